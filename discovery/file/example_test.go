package file_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ringside-proxy/ringside/discovery"
	"github.com/ringside-proxy/ringside/discovery/file"
)

func ExampleParse() {
	services, err := file.Parse("services.yaml", []byte(`
services:
  cart:
    - id: cart-1
      address: 127.0.0.1:8081
      weight: 2
      zone: eu-west-1a
    - address: 127.0.0.1:8082
      health: warning
      zone: eu-west-1b
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range services["cart"] {
		fmt.Println(e.ID, e.Address, e.Weight, e.Health, e.Zone)
	}

	_, err = file.Parse("services.yaml", []byte(`
services:
  cart:
    - address: 127.0.0.1:99999
`))
	fmt.Println(err)
	// Output:
	// cart-1 127.0.0.1:8081 2 passing eu-west-1a
	// 127.0.0.1:8082 127.0.0.1:8082 1 warning eu-west-1b
	// services.yaml:4: services.cart[0].address: port "99999": want a number in 1..65535
}

func ExampleSource_Watch() {
	dir, err := os.MkdirTemp("", "ringside")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "services.yaml")
	data := "services:\n  cart: [{address: 'b:80'}, {address: 'a:80', weight: 3}]\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		fmt.Println(err)
		return
	}

	src, err := file.NewSource(path, file.Config{}, nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = src.Watch(ctx, []string{"cart", "search"}, func(s *discovery.Snapshot) {
		fmt.Println(s.Service, "revision", s.Revision)
		for _, e := range s.Endpoints {
			fmt.Println("  ", e.ID, "weight", e.Weight)
		}
		if s.Service == "search" { // the last of the first snapshots; a real caller keeps watching
			cancel()
		}
	})
	fmt.Println(err)
	// Output:
	// cart revision 1
	//    a:80 weight 3
	//    b:80 weight 1
	// search revision 1
	// context canceled
}
