module github.com/ringside-proxy/ringside/deploy/bench

go 1.26.8

replace github.com/ringside-proxy/ringside => ../..

require (
	github.com/buraksezer/consistent v0.10.0
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/dgryski/go-jump v0.0.0-20170409065014-e1f439676b57
	github.com/golang/groupcache v0.0.0-20210331224755-41bb18bfe9da
	github.com/ringside-proxy/ringside v0.0.0-00010101000000-000000000000
	github.com/stathat/consistent v1.0.0
	go.uber.org/goleak v1.3.0
)
