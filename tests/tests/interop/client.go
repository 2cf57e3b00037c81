// A crypto/tls client for stud's interop test: sends a request file, writes what it receives
// to stdout, and reports on stderr whether close_notify arrived before the TCP end of stream.
//
// usage: client HOST:PORT CA_FILE 1.2|1.3 REQUEST_FILE
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// rawWatch records whether the TCP connection itself reached end of stream.
type rawWatch struct {
	net.Conn
	eof bool
}

func (w *rawWatch) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err == io.EOF {
		w.eof = true
	}
	return n, err
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 5 {
		fail("usage: client HOST:PORT CA_FILE 1.2|1.3 REQUEST_FILE")
	}
	caPEM, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("read CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		fail("no certificate in %s", os.Args[2])
	}
	version := uint16(tls.VersionTLS13)
	if os.Args[3] == "1.2" {
		version = tls.VersionTLS12
	}
	request, err := os.ReadFile(os.Args[4])
	if err != nil {
		fail("read request: %v", err)
	}
	tcp, err := net.DialTimeout("tcp", os.Args[1], 10*time.Second)
	if err != nil {
		fail("dial: %v", err)
	}
	raw := &rawWatch{Conn: tcp}
	conn := tls.Client(raw, &tls.Config{
		RootCAs:    roots,
		ServerName: "localhost",
		MinVersion: version,
		MaxVersion: version,
	})
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	if err := conn.Handshake(); err != nil {
		fail("handshake: %v", err)
	}
	if _, err := conn.Write(request); err != nil {
		fail("write: %v", err)
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		fail("read after %d bytes: %v", len(reply), err)
	}
	if raw.eof {
		fail("end of stream without close_notify after %d bytes", len(reply))
	}
	os.Stdout.Write(reply)
	names := map[uint16]string{tls.VersionTLS12: "TLSv1.2", tls.VersionTLS13: "TLSv1.3"}
	fmt.Fprintf(os.Stderr, "%s %s, close_notify before EOF\n",
		names[conn.ConnectionState().Version], tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
}
