package hashkey

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Source is where a key comes from in a request.
type Source uint8

// The sources. The zero Source is invalid, so a zero Spec is rejected by New.
const (
	// SourceHeader takes the value of a request header (the first line when it repeats).
	SourceHeader Source = iota + 1
	// SourceCookie takes the value of a request cookie.
	SourceCookie
	// SourceQuery takes the URL-decoded value of a query parameter.
	SourceQuery
	// SourcePath takes the whole decoded, normalized path ("/users/42/orders").
	SourcePath
	// SourcePathPrefix takes the first Segments segments of the path ("/users/42" for 2);
	// a path with fewer segments has no key from this source.
	SourcePathPrefix
	// SourcePathRegex takes the first capture group of Pattern matched against the path.
	SourcePathRegex
	// SourceClientIP takes the client address (see ClientIP), in its canonical text form.
	SourceClientIP
)

// The words ParseSpec accepts and String returns, by Source.
var sourceNames = [...]string{
	SourceHeader:     "header",
	SourceCookie:     "cookie",
	SourceQuery:      "query",
	SourcePath:       "path",
	SourcePathPrefix: "path_prefix",
	SourcePathRegex:  "path_regex",
	SourceClientIP:   "client_ip",
}

// String returns the word ParseSpec accepts for s, e.g. "path_prefix".
func (s Source) String() string {
	if s > 0 && int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "source(" + strconv.Itoa(int(s)) + ")"
}

// MaxSegments is the largest Spec.Segments accepted.
const MaxSegments = 64

// Spec is one key source of a chain. Only the field its Source uses may be set.
type Spec struct {
	Source Source
	// Name is the header, cookie or query parameter name.
	Name string
	// Segments is the number of leading path segments of SourcePathPrefix, 1..MaxSegments.
	Segments int
	// Pattern is the regular expression (RE2 syntax) of SourcePathRegex, with at least one
	// capture group; the first group is the key. It is matched against the decoded path.
	Pattern string
}

// ErrBadSpec is wrapped by every error ParseSpec and New return for a bad Spec.
var ErrBadSpec = errors.New("bad hash key spec")

// ParseSpec parses the text form of a Spec:
//
//	header:X-User-ID   cookie:session   query:uid
//	path               path_prefix:2    path_regex:^/users/([^/]+)
//	client_ip
//
// The source word is case-insensitive and surrounding spaces are ignored. Everything after
// the first colon is the argument, so a regular expression may contain colons.
func ParseSpec(s string) (Spec, error) {
	text := strings.TrimSpace(s)
	word, arg, hasArg := strings.Cut(text, ":")
	word = strings.ToLower(strings.TrimSpace(word))
	bad := func(format string, args ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("%w %q: %s", ErrBadSpec, s, fmt.Sprintf(format, args...))
	}
	var sp Spec
	switch word {
	case "header", "cookie", "query":
		sp.Name = strings.TrimSpace(arg)
		if !hasArg || sp.Name == "" {
			return bad("%s needs a name, as in %s:X", word, word)
		}
		sp.Source = map[string]Source{"header": SourceHeader, "cookie": SourceCookie, "query": SourceQuery}[word]
	case "path", "client_ip":
		if hasArg {
			return bad("%s takes no argument", word)
		}
		sp.Source = SourcePath
		if word == "client_ip" {
			sp.Source = SourceClientIP
		}
	case "path_prefix":
		n, err := strconv.Atoi(strings.TrimSpace(arg))
		if !hasArg || err != nil {
			return bad("path_prefix needs a number of segments, as in path_prefix:2")
		}
		sp.Source, sp.Segments = SourcePathPrefix, n
	case "path_regex":
		if !hasArg || arg == "" {
			return bad("path_regex needs a pattern, as in path_regex:^/users/([^/]+)")
		}
		sp.Source, sp.Pattern = SourcePathRegex, arg
	case "":
		return bad("empty")
	default:
		return bad("unknown source %q (want header, cookie, query, path, path_prefix, path_regex or client_ip)", word)
	}
	if _, err := sp.compile(); err != nil {
		return Spec{}, fmt.Errorf("%q: %w", s, err)
	}
	return sp, nil
}

// ParseSpecs parses each of texts with ParseSpec, in order.
func ParseSpecs(texts []string) ([]Spec, error) {
	specs := make([]Spec, 0, len(texts))
	for _, t := range texts {
		sp, err := ParseSpec(t)
		if err != nil {
			return nil, err
		}
		specs = append(specs, sp)
	}
	return specs, nil
}

// String returns the text form of sp, which ParseSpec parses back to sp.
func (sp Spec) String() string {
	switch sp.Source {
	case SourceHeader, SourceCookie, SourceQuery:
		return sp.Source.String() + ":" + sp.Name
	case SourcePathPrefix:
		return sp.Source.String() + ":" + strconv.Itoa(sp.Segments)
	case SourcePathRegex:
		return sp.Source.String() + ":" + sp.Pattern
	}
	return sp.Source.String()
}

// compile validates sp and returns its regular expression (nil unless SourcePathRegex).
func (sp Spec) compile() (*regexp.Regexp, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrBadSpec, sp.Source, fmt.Sprintf(format, args...))
	}
	if sp.Name != "" && sp.Source != SourceHeader && sp.Source != SourceCookie && sp.Source != SourceQuery {
		return nil, bad("takes no name")
	}
	if sp.Segments != 0 && sp.Source != SourcePathPrefix {
		return nil, bad("takes no segment count")
	}
	if sp.Pattern != "" && sp.Source != SourcePathRegex {
		return nil, bad("takes no pattern")
	}
	switch sp.Source {
	case SourceHeader, SourceCookie:
		if !isToken(sp.Name) {
			return nil, bad("name %q is not a valid token (letters, digits and !#$%%&'*+-.^_`|~)", sp.Name)
		}
	case SourceQuery:
		if sp.Name == "" || strings.ContainsFunc(sp.Name, isControl) {
			return nil, bad("name %q must be non-empty and free of control characters", sp.Name)
		}
	case SourcePathPrefix:
		if sp.Segments < 1 || sp.Segments > MaxSegments {
			return nil, bad("%d segments, want 1..%d", sp.Segments, MaxSegments)
		}
	case SourcePathRegex:
		re, err := regexp.Compile(sp.Pattern)
		if err != nil {
			return nil, bad("%v", err)
		}
		if re.NumSubexp() < 1 {
			return nil, bad("pattern %q has no capture group; the first group is the key", sp.Pattern)
		}
		return re, nil
	case SourcePath, SourceClientIP:
	default:
		return nil, fmt.Errorf("%w: unknown source %d", ErrBadSpec, sp.Source)
	}
	return nil, nil
}

// isToken reports whether s is an RFC 9110 token, the syntax of header and cookie names.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
