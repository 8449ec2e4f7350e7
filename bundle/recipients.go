package bundle

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
)

// MaxRecipientLine bounds one line of a recipients file.
const MaxRecipientLine = 64 << 10

// RecipientError says what is wrong with a recipient: Line is its 1-based
// line in a recipients file (0 for one given on its own), Text what was
// there (clipped).
type RecipientError struct {
	Line int
	Text string
	Err  error
}

func (e *RecipientError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %q: %v", e.Line, e.Text, e.Err)
	}
	return fmt.Sprintf("recipient %q: %v", e.Text, e.Err)
}

func (e *RecipientError) Unwrap() error { return e.Err }

// ErrNotX25519 is wrapped by a RecipientError for text that is not an age
// X25519 recipient.
var ErrNotX25519 = errors.New("not an age X25519 recipient (age1…, as 'ferry-agent identity' or 'age-keygen -y' prints)")

// ParseRecipient parses one age X25519 recipient, "age1…".
func ParseRecipient(s string) (*age.X25519Recipient, error) {
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return nil, &RecipientError{Text: clipText(s), Err: fmt.Errorf("%w: %v", ErrNotX25519, err)}
	}
	return r, nil
}

// ParseRecipients reads a recipients file: one recipient per line, an
// age X25519 recipient (age1…) or a JSON object with an "ageRecipient"
// (a line of 'ferry-agent identity --json', so a factory's enrollment
// list serves as it is). Blank lines and lines starting with '#' are
// skipped; leading and trailing white space is ignored. A recipient
// listed twice is kept once. Errors are *RecipientError with the line.
func ParseRecipients(r io.Reader) ([]age.Recipient, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxRecipientLine)
	var out []age.Recipient
	seen := map[string]bool{}
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		s := text
		if strings.HasPrefix(text, "{") {
			var id struct {
				AgeRecipient string `json:"ageRecipient"`
			}
			if err := json.Unmarshal([]byte(text), &id); err != nil {
				return nil, &RecipientError{Line: line, Text: clipText(text), Err: fmt.Errorf("not a JSON object: %v", err)}
			}
			if id.AgeRecipient == "" {
				return nil, &RecipientError{Line: line, Text: clipText(text), Err: errors.New(`no "ageRecipient" (made by an older ferry-agent?)`)}
			}
			s = id.AgeRecipient
		}
		rec, err := ParseRecipient(s)
		if err != nil {
			return nil, &RecipientError{Line: line, Text: clipText(text), Err: errors.Unwrap(err)}
		}
		if !seen[rec.String()] {
			seen[rec.String()] = true
			out = append(out, rec)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &RecipientError{Line: line + 1, Err: fmt.Errorf("line longer than %d bytes", MaxRecipientLine)}
		}
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no recipients in the file")
	}
	return out, nil
}

func clipText(s string) string {
	if len(s) > 80 {
		return strings.ToValidUTF8(s[:80], "") + "…"
	}
	return s
}
