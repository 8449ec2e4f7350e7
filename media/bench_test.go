package media

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferry-update/ferry/internal/display"
	"github.com/ferry-update/ferry/internal/testtool"
)

// The benchmarks build a stick image from one bundle and compare with dd
// copying the same bytes (with fsync, as Build syncs), the limit of any
// image writer. The bundle is 64 MiB of incompressible data unless
// FERRY_BENCH_MEDIA_SIZE says otherwise (e.g. 1GiB; scripts/bench-media.sh).

var benchOnce struct {
	sync.Once
	dir, bundle string
	size        int64
	err         error
}

func benchBundle(b *testing.B) (string, int64) {
	benchOnce.Do(func() {
		size := int64(64 << 20)
		if s := os.Getenv("FERRY_BENCH_MEDIA_SIZE"); s != "" {
			if size, benchOnce.err = display.ParseSize(s); benchOnce.err != nil {
				return
			}
		}
		benchOnce.dir, benchOnce.err = os.MkdirTemp("", "ferry-bench-media-")
		if benchOnce.err != nil {
			return
		}
		benchOnce.bundle = makeBundle(b, benchOnce.dir, "bench", "1.0.0", []string{"b"}, size, 0)
		st, err := os.Stat(benchOnce.bundle)
		benchOnce.size, benchOnce.err = st.Size(), err
	})
	if benchOnce.err != nil {
		b.Fatal(benchOnce.err)
	}
	return benchOnce.bundle, benchOnce.size
}

func BenchmarkBuild(b *testing.B) {
	bundle, size := benchBundle(b)
	out := filepath.Join(filepath.Dir(bundle), "stick.img")
	b.SetBytes(size)
	b.ReportAllocs()
	var peak uint64
	for b.Loop() {
		os.Remove(out)
		stop := sampleHeap(&peak)
		if _, err := Build(out, []string{bundle}, BuildOptions{}); err != nil {
			b.Fatal(err)
		}
		stop()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	os.Remove(out)
}

func BenchmarkDD(b *testing.B) {
	bundle, size := benchBundle(b)
	testtool.Require(b, "dd", "coreutils")
	out := filepath.Join(filepath.Dir(bundle), "dd.img")
	b.SetBytes(size)
	for b.Loop() {
		os.Remove(out)
		cmd := exec.Command("dd", "if="+bundle, "of="+out, "bs=4M", "conv=fsync", "status=none")
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("dd: %v %s", err, o)
		}
	}
	os.Remove(out)
}

// sampleHeap records the highest HeapInuse seen until stop is called.
func sampleHeap(peak *uint64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			*peak = max(*peak, m.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// TestBuildMemoryFlat: building from a bundle 4 times larger does not use
// (much) more heap: payloads stream.
func TestBuildMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 200 MiB of bundles")
	}
	dir := t.TempDir()
	var peaks []uint64
	for _, mib := range []int64{25, 100} {
		p := makeBundle(t, dir, "m"+strconv.FormatInt(mib, 10), "1.0.0", []string{"b"}, mib<<20, 0)
		runtime.GC()
		var peak uint64
		stop := sampleHeap(&peak)
		if _, err := Build(filepath.Join(dir, "s.img"), []string{p}, BuildOptions{}); err != nil {
			t.Fatal(err)
		}
		stop()
		os.Remove(filepath.Join(dir, "s.img"))
		os.Remove(p)
		peaks = append(peaks, peak)
	}
	t.Logf("peak heap: %.1f MiB for 25 MiB, %.1f MiB for 100 MiB", float64(peaks[0])/(1<<20), float64(peaks[1])/(1<<20))
	if peaks[1] > peaks[0]+24<<20 {
		t.Errorf("peak heap grew from %d to %d bytes with the bundle", peaks[0], peaks[1])
	}
}
