package proxy

import (
	"bytes"
	"errors"
)

var errChunkFraming = errors.New("malformed chunked body")

// chunkScanner follows the framing of a chunked body that is passed on byte for byte (the
// event loop does not re-chunk an endpoint's chunked body), to find where it ends, trailer
// section included. The bytes go to the client as they are, so it is strict: every line
// ends in CRLF, a chunk size is hex digits, optionally followed by extensions. The zero
// value is ready for a new body.
type chunkScanner struct {
	state  uint8
	digits uint8
	size   uint64 // the chunk size being read, then the data left of the chunk
}

const (
	chunkSize          uint8 = iota // the hex digits of a chunk size
	chunkExt                        // after the size: extensions, up to the line's CR
	chunkSizeLF                     // the LF ending a chunk-size line
	chunkData                       // chunk data
	chunkDataCR                     // the CR after chunk data
	chunkDataLF                     // the LF after chunk data
	chunkTrailer                    // the start of a trailer line, or of the final CRLF
	chunkTrailerLine                // inside a trailer field line, up to its CR
	chunkTrailerLineLF              // the LF ending a trailer field line
	chunkTrailerLF                  // the LF of the final CRLF
	chunkDone
)

// maxChunkDigits bounds a chunk size to 15 hex digits, well inside uint64.
const maxChunkDigits = 15

// scan consumes p and returns how many of its bytes belong to the body: all of them unless
// the body ends inside p, which done reports. A framing error leaves the scanner unusable.
func (s *chunkScanner) scan(p []byte) (n int, done bool, err error) {
	for n < len(p) {
		if s.state == chunkData {
			k := uint64(len(p) - n)
			if k > s.size {
				k = s.size
			}
			n += int(k)
			if s.size -= k; s.size == 0 {
				s.state = chunkDataCR
			}
			continue
		}
		c := p[n]
		n++
		switch s.state {
		case chunkSize:
			switch d := unhex(c); {
			case d >= 0:
				if s.digits == maxChunkDigits {
					return n, false, errChunkFraming
				}
				s.size, s.digits = s.size<<4|uint64(d), s.digits+1
			case s.digits == 0:
				return n, false, errChunkFraming
			case c == ';' || c == ' ' || c == '\t':
				s.state = chunkExt
			case c == '\r':
				s.state = chunkSizeLF
			default:
				return n, false, errChunkFraming
			}
		case chunkExt:
			switch c {
			case '\r':
				s.state = chunkSizeLF
			case '\n':
				return n, false, errChunkFraming
			}
		case chunkSizeLF:
			if c != '\n' {
				return n, false, errChunkFraming
			}
			s.endSizeLine()
		case chunkDataCR:
			if c != '\r' {
				return n, false, errChunkFraming
			}
			s.state = chunkDataLF
		case chunkDataLF:
			if c != '\n' {
				return n, false, errChunkFraming
			}
			s.state, s.digits = chunkSize, 0
		case chunkTrailer:
			switch c {
			case '\r':
				s.state = chunkTrailerLF
			case '\n':
				return n, false, errChunkFraming
			default:
				s.state = chunkTrailerLine
			}
		case chunkTrailerLine:
			switch c {
			case '\r':
				s.state = chunkTrailerLineLF
			case '\n':
				return n, false, errChunkFraming
			}
		case chunkTrailerLineLF:
			if c != '\n' {
				return n, false, errChunkFraming
			}
			s.state = chunkTrailer
		case chunkTrailerLF:
			if c != '\n' {
				return n, false, errChunkFraming
			}
			s.state = chunkDone
			return n, true, nil
		default:
			return n, false, errChunkFraming
		}
	}
	return n, false, nil
}

// endSizeLine moves on from a chunk-size line: to the data, or to the trailer section after
// the last chunk.
func (s *chunkScanner) endSizeLine() {
	if s.size == 0 {
		s.state = chunkTrailer
		return
	}
	s.state = chunkData
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// appendChunk appends p to dst as one chunk of a chunked body; an empty p is the last chunk.
func appendChunk(dst, p []byte) []byte {
	dst = appendHex(dst, uint64(len(p)))
	dst = append(dst, "\r\n"...)
	dst = append(dst, p...)
	return append(dst, "\r\n"...)
}

func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	if v == 0 {
		return append(dst, '0')
	}
	var buf [16]byte
	i := len(buf)
	for v > 0 {
		i--
		buf[i] = digits[v&15]
		v >>= 4
	}
	return append(dst, buf[i:]...)
}

// headEnd returns the length of the message head at the start of b, through the empty line
// that ends it (CRLF CRLF, or the bare LFs fasthttp's parser also takes), or -1 when b does
// not hold a whole head yet.
func headEnd(b []byte) int {
	for i := 0; ; i++ {
		k := bytes.IndexByte(b[i:], '\n')
		if k < 0 {
			return -1
		}
		i += k
		j := i + 1
		if j < len(b) && b[j] == '\r' {
			j++
		}
		if j < len(b) && b[j] == '\n' {
			return j + 1
		}
	}
}
