package signing

import (
	"context"
	"strings"
)

// openKMS opens a key in a KMS.
func openKMS(_ context.Context, ref string) (Key, error) {
	scheme, _, _ := strings.Cut(ref, "://")
	return nil, &UnavailableError{Kind: scheme, Reason: "a cloud KMS cannot be reached from an isolated site; use a key in a PKCS#11 token or hashivault://"}
}
