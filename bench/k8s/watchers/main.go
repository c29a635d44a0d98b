// Command watchers measures the Kubernetes API's watch fan-out with native
// clients: N watch streams (goroutines, one TLS connection each, as
// client-go opens them) on one ConfigMap, and one writer that patches it W
// times, each write sent only after every watcher has read the previous
// one's event. The latency of an event is from just before its PATCH is
// sent to the moment a watcher has read its line, on one clock. It prints
// one JSON object: {"watchers", "writes", "events", "p50_ms", "p99_ms",
// "max_ms"}.
//
// The Python benchmark (bench.py) measures the same with 100 Python
// threads; this one takes the client out of the measurement.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

type event struct {
	Object struct {
		Data map[string]string `json:"data"`
	} `json:"object"`
}

func main() {
	base := flag.String("url", "", "https://HOST:PORT of oxflow up")
	token := flag.String("token", "", "bearer token")
	caFile := flag.String("ca", "", "the server's CA certificate (PEM)")
	watchers := flag.Int("watchers", 100, "concurrent watch streams")
	writes := flag.Int("writes", 200, "patches to the watched object")
	name := flag.String("name", "watched-go", "the ConfigMap to create and watch")
	flag.Parse()

	pem, err := os.ReadFile(*caFile)
	must(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		must(fmt.Errorf("no certificate in %s", *caFile))
	}
	newClient := func() *http.Client {
		// One connection per watcher (its own transport), as separate
		// client-go informers would have.
		return &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: false,
			TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		}}
	}
	coll := *base + "/api/v1/namespaces/default/configmaps"
	do := func(c *http.Client, method, url, ctype string, body []byte) *http.Response {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		must(err)
		req.Header.Set("Authorization", "Bearer "+*token)
		req.Header.Set("Accept", "application/json")
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := c.Do(req)
		must(err)
		return resp
	}

	writer := newClient()
	resp := do(writer, "POST", coll, "application/json",
		[]byte(fmt.Sprintf(`{"metadata":{"name":%q},"data":{"seq":"-1"}}`, *name)))
	var created struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	must(json.NewDecoder(resp.Body).Decode(&created))
	resp.Body.Close()
	if resp.StatusCode != 201 {
		must(fmt.Errorf("creating %s: %s", *name, resp.Status))
	}

	// arrivals[w][seq]: when watcher w read write seq's event.
	arrivals := make([][]time.Time, *watchers)
	counts := make([]chan int, *watchers)
	var ready sync.WaitGroup
	ready.Add(*watchers)
	for w := 0; w < *watchers; w++ {
		arrivals[w] = make([]time.Time, *writes)
		counts[w] = make(chan int, *writes)
		go func(w int) {
			c := newClient()
			url := fmt.Sprintf("%s?watch=true&resourceVersion=%s&fieldSelector=metadata.name%%3D%s",
				coll, created.Metadata.ResourceVersion, *name)
			resp := do(c, "GET", url, "", nil)
			if resp.StatusCode != 200 {
				must(fmt.Errorf("watch: %s", resp.Status))
			}
			ready.Done()
			r := bufio.NewReaderSize(resp.Body, 64<<10)
			for n := 0; n < *writes; n++ {
				line, err := r.ReadBytes('\n')
				now := time.Now()
				must(err)
				var e event
				must(json.Unmarshal(line, &e))
				seq, err := strconv.Atoi(e.Object.Data["seq"])
				must(err)
				arrivals[w][seq] = now
				counts[w] <- seq
			}
			resp.Body.Close()
		}(w)
	}
	ready.Wait()

	sent := make([]time.Time, *writes)
	for seq := 0; seq < *writes; seq++ {
		body := []byte(fmt.Sprintf(`{"data":{"seq":%q}}`, strconv.Itoa(seq)))
		sent[seq] = time.Now()
		resp := do(writer, "PATCH", coll+"/"+*name, "application/merge-patch+json", body)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			must(fmt.Errorf("patch %d: %s", seq, resp.Status))
		}
		deadline := time.After(30 * time.Second)
		for w := 0; w < *watchers; w++ {
			select {
			case got := <-counts[w]:
				if got != seq {
					must(fmt.Errorf("watcher %d read write %d, expected %d", w, got, seq))
				}
			case <-deadline:
				must(fmt.Errorf("write %d did not reach watcher %d", seq, w))
			}
		}
	}

	var lat []float64
	for w := range arrivals {
		for seq, t := range arrivals[w] {
			lat = append(lat, float64(t.Sub(sent[seq]).Microseconds())/1000)
		}
	}
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		i := int(p/100*float64(len(lat)-1) + 0.5)
		return lat[i]
	}
	out, _ := json.Marshal(map[string]any{
		"watchers": *watchers, "writes": *writes, "events": len(lat),
		"p50_ms": pct(50), "p99_ms": pct(99), "max_ms": lat[len(lat)-1],
	})
	fmt.Println(string(out))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "watchers:", err)
		os.Exit(1)
	}
}
