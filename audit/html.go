package audit

import (
	_ "embed"
	"html/template"
	"io"
	"strings"

	"github.com/ferry-update/ferry/internal/display"
)

//go:embed report.html
var reportHTML string

// reportTemplate renders a Report as one self-contained HTML page: inline
// CSS, no scripts, no external resources. html/template escapes every
// value by context, which matters: signer names, descriptions and SBOM
// versions come from whoever made the bundle. Such text also goes
// through display.Untrusted, so that bidirectional overrides cannot
// reorder what a reviewer reads, and control characters show.
var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"stamp":     display.Time,
	"untrusted": display.Untrusted,
	"short":     display.ShortID,
	"bytes":     display.Bytes,
	"join":      strings.Join,
	"inc":       func(i int) int { return i + 1 },
	"deref":     func(b *bool) bool { return b != nil && *b },
}).Parse(reportHTML))

// WriteHTML writes the report as one self-contained HTML file a reviewer
// can open, print, or attach to a ticket.
func (r *Report) WriteHTML(w io.Writer) error {
	return reportTemplate.Execute(w, r)
}
