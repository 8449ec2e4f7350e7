package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// cmdServe: serve VAR DIR [FLAG...] starts 'ferry mirror serve DIR
// --listen 127.0.0.1:0 --refresh-interval 0 FLAG...' in the background,
// waits until it listens, and sets $VAR to its URL (http://127.0.0.1:PORT,
// the port the system chose). Its log goes to $WORK/VAR.log; it is
// stopped (SIGINT) when the script ends.
func cmdServe(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: serve VAR DIR [FLAG...]")
	}
	ferry := ""
	for _, d := range filepath.SplitList(ts.Getenv("PATH")) {
		if p := filepath.Join(d, "ferry"); fileExists(p) {
			ferry = p
			break
		}
	}
	if ferry == "" {
		ts.Fatalf("serve: no ferry command in $PATH")
	}
	cmd := exec.Command(ferry, append([]string{"mirror", "serve", ts.MkAbs(args[1]), "--listen", "127.0.0.1:0", "--refresh-interval", "0"}, args[2:]...)...)
	cmd.Dir = ts.Getenv("WORK")
	logf, err := os.Create(ts.MkAbs(args[0] + ".log"))
	ts.Check(err)
	stderr, err := cmd.StderrPipe()
	ts.Check(err)
	ts.Check(cmd.Start())
	ts.Defer(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		logf.Close()
	})
	sc := bufio.NewScanner(io.TeeReader(stderr, logf))
	for sc.Scan() {
		line := sc.Text()
		if _, u, ok := strings.Cut(line, " on http://"); ok && strings.Contains(line, "serving mirror") {
			ts.Setenv(args[0], "http://"+u)
			go io.Copy(logf, stderr) // the rest of the log
			return
		}
	}
	cmd.Wait()
	ts.Fatalf("ferry mirror serve did not start: %s", ts.ReadFile(args[0]+".log"))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
