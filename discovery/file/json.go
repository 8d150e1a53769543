package file

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf16"
)

// jsonForYAML rewrites the JSON string escapes that yaml.v3 rejects although JSON allows them,
// so that a JSON file decodes as YAML with its line numbers intact: "\/" (which PHP's and other
// encoders emit) becomes "/", a UTF-16 surrogate pair "\ud83d\ude00" becomes YAML's
// "\U0001F600", and a lone surrogate becomes "\uFFFD" as encoding/json decodes it. Data that is
// not valid JSON, or needs no rewriting, is returned as it is.
func jsonForYAML(data []byte) []byte {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') ||
		!bytes.Contains(data, []byte(`\`)) || !json.Valid(data) {
		return data
	}
	// json.Valid guarantees that every escape is complete, so the indexing below stays in range.
	out := make([]byte, 0, len(data))
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case !inString:
			inString = c == '"'
			out = append(out, c)
		case c == '"':
			inString = false
			out = append(out, c)
		case c != '\\':
			out = append(out, c)
		case data[i+1] == '/':
			out = append(out, '/')
			i++
		case data[i+1] != 'u':
			out = append(out, c, data[i+1])
			i++
		default:
			r := hex4(data[i+2 : i+6])
			if !utf16.IsSurrogate(r) {
				out = append(out, data[i:i+6]...)
				i += 5
				break
			}
			if i+12 <= len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
				if pair := utf16.DecodeRune(r, hex4(data[i+8:i+12])); pair != '\uFFFD' {
					out = fmt.Appendf(out, `\U%08X`, pair)
					i += 11
					break
				}
			}
			out = append(out, `\uFFFD`...)
			i += 5
		}
	}
	return out
}

// hex4 decodes four hex digits, which json.Valid has checked.
func hex4(b []byte) rune {
	n, err := strconv.ParseUint(string(b), 16, 32)
	if err != nil {
		return '\uFFFD'
	}
	return rune(n)
}
