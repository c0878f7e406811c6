package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// certPollEvery is how often serve looks at the certificate files for a
// change; a SIGHUP reloads them at once.
var certPollEvery = 5 * time.Second

// certReloader serves the certificate in a PEM pair of files and replaces
// it when they change, without a restart: every handshake asks
// GetCertificate, so connections already open keep theirs and new ones get
// the new one.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.RWMutex
	cert  *tls.Certificate
	stamp string // the files' sizes and modification times when loaded
}

// newCertReloader loads the pair; a pair that does not load is an error.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// fileStamp identifies the files' current contents well enough to notice
// a replacement (a rename of a new file, or a rewrite).
func (r *certReloader) fileStamp() (string, error) {
	var s string
	for _, p := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

// reload reads the pair. On failure (a half-written renewal, a key that
// does not match) the certificate served so far stays, and the next poll
// tries again.
func (r *certReloader) reload() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.mu.Lock()
	r.cert, r.stamp = &cert, stamp
	r.mu.Unlock()
	if cert.Leaf != nil {
		r.log.Info("tls certificate loaded", "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter, "serial", cert.Leaf.SerialNumber.String())
	}
	return nil
}

// changed reports whether the files differ from the loaded pair.
func (r *certReloader) changed() bool {
	stamp, err := r.fileStamp()
	r.mu.RLock()
	defer r.mu.RUnlock()
	return err == nil && stamp != r.stamp
}

// getCertificate is tls.Config.GetCertificate.
func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, nil
}

// watch reloads the pair when the files change, until ctx ends.
func (r *certReloader) watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r.changed() {
				if err := r.reload(); err != nil {
					r.log.Error("tls certificate not reloaded; serving the previous one", "err", err)
				}
			}
		}
	}
}

// serverTLSConfig is the public listener's TLS: 1.2 and up (Go's default
// cipher suites, all AEAD with forward secrecy), HTTP/2 offered first.
func serverTLSConfig(r *certReloader) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// tlsFlags checks --tls-cert and --tls-key against each other and the
// issuer: both or neither, and https when given.
func tlsFlags(certFile, keyFile, issuer string) error {
	if (certFile == "") != (keyFile == "") {
		return usageError{"--tls-cert and --tls-key go together"}
	}
	if certFile != "" && strings.HasPrefix(issuer, "http://") {
		return usageError{fmt.Sprintf("--issuer %q: serving TLS, the issuer is https://", issuer)}
	}
	return nil
}
