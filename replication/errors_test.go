package replication

import "testing"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:s3cret@127.0.0.1:5432/app":                     "postgres://app:xxxxx@127.0.0.1:5432/app",
		"postgres://127.0.0.1:5432/app":                                "postgres://127.0.0.1:5432/app",
		"host=x password=s3cret user=a":                                "host=x password=xxxxx user=a",
		"host=x password='s 3' user=a":                                 "host=x password=xxxxx user=a",
		"failed to connect to `user=app database=app`: 127.0.0.1:5432": "failed to connect to `user=app database=app`: 127.0.0.1:5432",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
