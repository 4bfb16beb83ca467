package admin

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 document of the API; a test checks it
// against the OpenAPI schema and against the routes served.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document of the API.
func OpenAPI() []byte { return openAPIDoc }

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
}
