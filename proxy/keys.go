package proxy

import "github.com/ringside-proxy/ringside/proxy/hashkey"

// Keys returns the handler's key extractor, the chain of hash key sources its requests are
// routed by, so that the admin API explains a route with the very code requests use.
func (h *Handler) Keys() *hashkey.Extractor { return h.keys }
