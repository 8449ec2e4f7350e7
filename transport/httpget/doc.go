// Package httpget is the device's one way to fetch over HTTP: the client
// every network call goes through, and the one resumable reader.
//
// # The client
//
// NewClient gives each stage of a request its own timeout (connect, TLS
// handshake, response header), and a response body that makes no progress
// for IdleTimeout ends in an error. There is deliberately no limit on a
// whole transfer: a large bundle over a slow but moving link must finish.
// The caller's context still ends a request at any stage.
//
// # The resumable reader
//
// Reader streams a URL and continues a dropped connection with a Range
// request; the agent's http(s) bundle sources and transport/oci's blob
// downloads both read through it, with one Content-Range parser
// (ParseContentRange) and one backoff (Backoff). Its policy:
//
//   - A resume is answered with 206 from the byte asked for, or with 200
//     and the whole file, of which the bytes already delivered are read
//     again and discarded (at most MaxSkip, 1 GiB by default). Proxies
//     and simple file servers that ignore Range are common on factory
//     networks, and a re-read beats failing a long download; the bound
//     keeps a server that can never resume from turning each drop into a
//     full re-download. Before a 200 is accepted its validator (strong
//     ETag, else Last-Modified, also sent as If-Range) and its length
//     must match the first response's, so two versions of a file are
//     never spliced.
//   - Retries counts attempts in a row that deliver no byte: a download
//     that moves on with every attempt finishes however often it is cut,
//     one that stalls fails after Retries attempts. (transport/oci used to
//     count every resume, which failed long blob downloads over links that
//     drop regularly.) The waits double from Backoff up to MaxBackoff.
//   - Answers that no retry can fix (4xx other than 408 and 429, a
//     Content-Range that does not start where asked, a changed file) end
//     the download at once.
//
// Nothing here checks content: callers hash what they read (verifyio,
// bundle.Assemble).
package httpget
