// kubelet_probe drives our kubelet API with client-go's own SPDY clients, the code a real API server and
// kubectl use, so the tests check interoperability with the Go implementation and not only our client
// against our server.
//
//	kubelet_probe exec URL [-stdin TEXT] [-tty -resize HxW[,HxW...]]
//	    remotecommand.NewSPDYExecutor: copies stdout/stderr through, exits with the command's exit code
//	    (100 + a message on stderr for any other error). With -resize, the first size is sent at once and
//	    each further one after more output has arrived.
//	kubelet_probe forward URL REMOTE_PORT GETS
//	    tools/portforward on a free local port, then GETS concurrent HTTP GETs through it; prints each body.
//	kubelet_probe pairs URL PORT...
//	    one SPDY connection, one error+data stream pair per PORT in turn (an HTTP GET on each data stream);
//	    prints "PORT error: MESSAGE" or "PORT body: BODY" per pair.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
)

func config(target *url.URL) *rest.Config {
	return &rest.Config{
		Host:            target.Scheme + "://" + target.Host,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(100)
}

// sizes hands out terminal sizes: the first at once, each next one after stdout has grown again.
type sizes struct {
	pending []remotecommand.TerminalSize
	output  chan struct{}
	done    chan struct{}
	first   bool
}

func (s *sizes) Next() *remotecommand.TerminalSize {
	if len(s.pending) == 0 {
		<-s.done
		return nil
	}
	if s.first {
		select {
		case <-s.output:
		case <-s.done:
			return nil
		}
	}
	s.first = true
	size := s.pending[0]
	s.pending = s.pending[1:]
	return &size
}

type notifyingWriter struct {
	out    io.Writer
	notify chan struct{}
}

func (w notifyingWriter) Write(p []byte) (int, error) {
	n, err := w.out.Write(p)
	select {
	case w.notify <- struct{}{}:
	default:
	}
	return n, err
}

func runExec(args []string) {
	flags := flag.NewFlagSet("exec", flag.ExitOnError)
	stdin := flags.String("stdin", "", "text for the command's stdin (then EOF)")
	tty := flags.Bool("tty", false, "ask for a terminal")
	resize := flags.String("resize", "", "terminal sizes HxW, comma-separated")
	_ = flags.Parse(args[1:])
	target, err := url.Parse(args[0])
	if err != nil {
		fail("bad URL: %v", err)
	}
	executor, err := remotecommand.NewSPDYExecutor(config(target), "POST", target)
	if err != nil {
		fail("executor: %v", err)
	}
	options := remotecommand.StreamOptions{Stdout: os.Stdout, Stderr: os.Stderr, Tty: *tty}
	if target.Query().Get("input") == "1" {
		options.Stdin = strings.NewReader(*stdin)
	}
	done := make(chan struct{})
	if *resize != "" {
		queue := &sizes{output: make(chan struct{}, 1), done: done}
		for _, spec := range strings.Split(*resize, ",") {
			var h, w uint16
			if _, err := fmt.Sscanf(spec, "%dx%d", &h, &w); err != nil {
				fail("bad size %q", spec)
			}
			queue.pending = append(queue.pending, remotecommand.TerminalSize{Height: h, Width: w})
		}
		options.Stdout = notifyingWriter{out: os.Stdout, notify: queue.output}
		options.TerminalSizeQueue = queue
	}
	err = executor.StreamWithContext(context.Background(), options)
	close(done)
	if err != nil {
		var exit interface{ ExitStatus() int }
		if errors.As(err, &exit) {
			fmt.Fprintf(os.Stderr, "probe: %v\n", err)
			os.Exit(exit.ExitStatus())
		}
		fail("stream: %v", err)
	}
}

func runForward(args []string) {
	target, err := url.Parse(args[0])
	if err != nil {
		fail("bad URL: %v", err)
	}
	gets, _ := strconv.Atoi(args[2])
	transport, upgrader, err := spdy.RoundTripperFor(config(target))
	if err != nil {
		fail("round tripper: %v", err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", target)
	stop, ready := make(chan struct{}), make(chan struct{})
	forwarder, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + args[1]}, stop, ready, io.Discard, os.Stderr)
	if err != nil {
		fail("port forward: %v", err)
	}
	failed := make(chan error, 1)
	go func() { failed <- forwarder.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-failed:
		fail("forwarding: %v", err)
	}
	ports, err := forwarder.GetPorts()
	if err != nil || len(ports) != 1 {
		fail("ports: %v", err)
	}
	bodies := make([]string, gets)
	var wg sync.WaitGroup
	for i := range gets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A fresh connection per GET: each is its own stream pair on the SPDY connection.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/get-%d", ports[0].Local, i))
			if err != nil {
				bodies[i] = "error: " + err.Error()
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			bodies[i] = string(body)
		}()
	}
	wg.Wait()
	close(stop)
	for _, body := range bodies {
		fmt.Println(body)
	}
}

func runPairs(args []string) {
	target, err := url.Parse(args[0])
	if err != nil {
		fail("bad URL: %v", err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(config(target))
	if err != nil {
		fail("round tripper: %v", err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", target)
	conn, protocol, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		fail("dial: %v", err)
	}
	defer conn.Close()
	if protocol != portforward.PortForwardProtocolV1Name {
		fail("negotiated %q", protocol)
	}
	for id, port := range args[1:] {
		headers := http.Header{}
		headers.Set("streamType", "error")
		headers.Set("port", port)
		headers.Set("requestID", strconv.Itoa(id))
		errorStream, err := conn.CreateStream(headers)
		if err != nil {
			fail("error stream: %v", err)
		}
		_ = errorStream.Close()
		headers.Set("streamType", "data")
		dataStream, err := conn.CreateStream(headers)
		if err != nil {
			fail("data stream: %v", err)
		}
		fmt.Fprintf(dataStream, "GET /pair-%d HTTP/1.0\r\nHost: pod\r\n\r\n", id)
		_ = dataStream.Close()
		response, _ := io.ReadAll(dataStream)
		message, _ := io.ReadAll(errorStream)
		if len(message) > 0 {
			fmt.Printf("%s error: %s\n", port, message)
			continue
		}
		parsed, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(response))), nil)
		if err != nil {
			fmt.Printf("%s unreadable: %q\n", port, response)
			continue
		}
		body, _ := io.ReadAll(parsed.Body)
		fmt.Printf("%s body: %s\n", port, body)
	}
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: kubelet_probe exec|forward|pairs URL ...")
	}
	switch os.Args[1] {
	case "exec":
		runExec(os.Args[2:])
	case "forward":
		runForward(os.Args[2:])
	case "pairs":
		runPairs(os.Args[2:])
	default:
		fail("unknown mode %q", os.Args[1])
	}
}
