package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"go.uber.org/zap"
)

// maxTokenFile bounds the token file.
const maxTokenFile = 4 << 10

// minTokenLen is the shortest token accepted.
const minTokenLen = 16

// ReadToken reads the bearer token in path: its contents without surrounding white space, at
// least minTokenLen bytes. The error never contains the token.
func ReadToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf := make([]byte, maxTokenFile+1)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if n > maxTokenFile {
		return "", fmt.Errorf("%s: more than %d bytes: want one token", path, maxTokenFile)
	}
	tok := strings.TrimSpace(string(buf[:n]))
	if len(tok) < minTokenLen || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("%s: want one token of at least %d characters without spaces, e.g. made by: head -c 32 /dev/urandom | base64 > %s", path, minTokenLen, path)
	}
	return tok, nil
}

// errNoToken: the request has no bearer token.
var errNoToken = errors.New("missing bearer token")

// guard wraps a mutating handler: it runs only with the bearer token of admin.token_file,
// read at each request (so a rotated token applies at once) and compared in constant time.
// Without a token file configured, mutations are refused with 403 and how to enable them.
func (s *Server) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.TokenFile == "" {
			writeError(w, http.StatusForbidden, "changes through the admin API are disabled",
				"set admin.token_file in the configuration to a file holding a token (e.g. head -c 32 /dev/urandom | base64 > /etc/ringside/admin-token), restart, and send it as Authorization: Bearer TOKEN")
			return
		}
		want, err := ReadToken(s.opts.TokenFile)
		if err != nil {
			s.log.Error("admin token file unreadable: changes refused", zap.Error(err))
			writeError(w, http.StatusServiceUnavailable, "the admin token file cannot be read; see the sidecar's log", "")
			return
		}
		got, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringside"`)
			writeError(w, http.StatusUnauthorized, errNoToken.Error(), "Authorization: Bearer TOKEN, the token in admin.token_file")
			return
		}
		// Hashing first makes the compare constant-time whatever the lengths.
		a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
		if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="ringside", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "wrong bearer token", "Authorization: Bearer TOKEN, the token in admin.token_file")
			return
		}
		h(w, r)
	}
}

// bearer returns the token of r's Authorization header.
func bearer(r *http.Request) (string, bool) {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
