package decoder

// The checks the decoder applies to an outbox row, for producers that want
// to refuse a bad event before they insert it (package outbox). Each
// returns why the value would make the row an invalid event, or "".

// CheckSource checks a CloudEvents source (a URI-reference).
func CheckSource(s string) string { return validURIRef(s) }

// CheckDataSchema checks a dataschema (an absolute URI).
func CheckDataSchema(s string) string { return validURI(s) }

// CheckMediaType checks a datacontenttype ("" is allowed).
func CheckMediaType(ct string) string { return validMediaType(ct) }

// CheckExtension checks one header (extension attribute) name and its
// string value.
func CheckExtension(name, value string) string {
	if r := validExtensionName(name); r != "" {
		return r
	}
	return checkExtensionValue(name, value)
}

// CheckJSON checks that b is valid in the CloudEvents JSON format (RFC
// 8259 and I-JSON, as a json column is checked).
func CheckJSON(b []byte) string {
	var c jsonChecker
	r, _ := c.check(b)
	return r
}
