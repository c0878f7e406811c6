package mail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Dir writes each message as an .eml file in Path instead of sending it
// (`keystep serve --mail-dir`, for development): the bytes an SMTP relay
// would have received, for a mail program or a test to open.
type Dir struct {
	Path string
	// From is the sender, as for SMTP.
	From string
	// Now dates the messages and names the files (time.Now).
	Now func() time.Time
}

// Send writes m to a new file (mode 0600: the links in it sign people in
// to changes) named after its date, atomically: a reader never sees half
// a message.
func (d *Dir) Send(_ context.Context, m Message) error {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	t := now()
	data, err := Render(m, d.From, t)
	if err != nil {
		return err
	}
	id, err := token()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.Path, ".mail-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	name := filepath.Join(d.Path, fmt.Sprintf("%s-%s.eml", t.UTC().Format("20060102T150405.000000000Z"), id[:8]))
	return os.Rename(f.Name(), name)
}
