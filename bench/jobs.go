package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hoctl/hoctl/pkg/jobs"
)

// jobsScan times `hoctl migrate-jobs` (a dry run: parse, rewrite, diff,
// report) over 100, 1,000 and 10,000 job files made from the test corpus,
// each copy a different job. The target: 1,000 files in under 1 s, and
// time growing linearly with the number of files.
func (h *harness) jobsScan() error {
	corpus, err := filepath.Glob("pkg/jobs/testdata/jobs/*")
	if err != nil {
		return err
	}
	if len(corpus) == 0 {
		return fmt.Errorf("no corpus in pkg/jobs/testdata/jobs")
	}
	var srcs [][]byte
	var names []string
	for _, p := range corpus {
		if !jobs.IsJobFile(p) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		srcs, names = append(srcs, b), append(names, filepath.Base(p))
	}
	fmt.Printf("#### migrate-jobs: scan and rewrite (dry run), files made from the %d-file corpus\n\n", len(srcs))
	fmt.Println("| files | median wall | runs | per 1,000 files |")
	fmt.Println("|---|---|---|---|")
	for _, n := range []int{100, 1000, 10000} {
		dir := filepath.Join(h.dir, fmt.Sprintf("jobs-%d", n))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			k := i % len(srcs)
			src := strings.Replace(string(srcs[k]), `job "`, fmt.Sprintf(`job "n%d-`, i), 1)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d-%s", i, names[k])), []byte(src), 0o644); err != nil {
				return err
			}
		}
		var ds []time.Duration
		for r := 0; r < h.cfg.runs; r++ {
			d, _, err := h.timeCmd([]string{"HOCTL_INVENTORY=/dev/null"}, h.cfg.hoctl, "migrate-jobs", "--dir", dir, "--from", "/data/compute", "--to", "/data/services")
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		m := median(ds)
		fmt.Printf("| %d | %s | %s | %.3f s |\n", n, secs(m), list(ds), m.Seconds()*1000/float64(n))
	}
	fmt.Println()
	return nil
}
