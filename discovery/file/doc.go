// Package file is ringside's embedded discovery source: a YAML or JSON file that lists
// services and their endpoints, re-read whenever it changes.
//
// # File format
//
// One document with a single top-level key, services, mapping each service name to a list
// of endpoints (JSON is YAML too, so the same file may be written as JSON; the extension does
// not matter):
//
//	services:
//	  cart:
//	    - id: cart-1            # optional; defaults to address
//	      address: 127.0.0.1:8081   # required; host:port, port 1..65535
//	      weight: 2             # optional; 1..65535, default 1
//	      health: passing       # optional; passing | warning | critical, default passing
//	      zone: eu-west-1a      # optional
//	      tags: [v2]            # optional
//	      meta: {version: "1.4"}   # optional; string values
//	  search: []                # listed with no endpoints
//
// Unknown keys, duplicate keys, a missing or bad address, a weight outside 1..65535 or not a
// whole number, an unknown health and two endpoints of one service with the same id (given or
// defaulted) are errors; so is an empty file or one without a services key (write
// "services: {}" to list none on purpose). Anchors, aliases and merge keys (<<) work as in
// YAML. Errors name the file, the line and the path of the offending value:
//
//	services.yaml:7: services.cart[1].address: port "99999": want a number in 1..65535
//
// # Reloading
//
// A Source polls the file (every second by default) rather than watching it with inotify, so
// it keeps working when an editor replaces the file by renaming a new one over it and when
// Kubernetes swaps a ConfigMap volume's ..data symlink. A change is noticed from the file's
// size, modification time, inode and change time (the last two on Linux), and confirmed by a
// hash of its contents, so rewriting it without a real change delivers nothing. A file modified
// within the last couple of seconds is read on every poll until it has settled, because two
// writes within one tick of the filesystem's clock can leave every stat field unchanged.
//
// New contents are acted on once polls have read the same bytes for at least 100ms, and the
// file did not change while it was read, so a file caught half-written by a writer that
// truncates and then writes is neither delivered nor reported; with the default interval a
// change takes effect one to two seconds after it is made. Replacing the file atomically (write
// a temporary file, then rename it) is still the safe way to edit it: a writer that stalls
// halfway for longer can be caught.
//
// A file that becomes unreadable or invalid keeps the last good snapshots in force: the
// problem is logged once (and again only when the file changes), reported to the Observer, and
// the source recovers by itself when the file is fixed. A file that is missing or invalid when
// Watch starts is a configuration error, which Watch returns at once.
//
// A service passed to Watch but absent from the file gets an empty snapshot, so that a caller
// waiting for the first snapshot of every service learns that the file was read.
package file
