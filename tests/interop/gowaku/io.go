package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
)

// emitter writes JSON lines to the real stdout. Events that arrive before the
// "ready" line are held back and written right after it; once stopping, nothing
// more is written (the answer to "stop" is the last line).
type emitter struct {
	mu       sync.Mutex
	w        *os.File
	ready    bool
	pending  [][]byte
	stopping bool
	broken   bool
	onBroken func()
}

func newEmitter(w *os.File) *emitter { return &emitter{w: w} }

func marshalLine(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Cannot happen for the maps built here; never print a broken line.
		fallback, _ := json.Marshal(map[string]any{"event": "internal-error", "error": err.Error()})
		return append(fallback, '\n')
	}
	return buf.Bytes() // Encode appends '\n'
}

// writeLocked writes one line; the caller holds e.mu.
func (e *emitter) writeLocked(line []byte) {
	if e.broken {
		return
	}
	if _, err := e.w.Write(line); err != nil {
		e.broken = true
		if e.onBroken != nil {
			go e.onBroken() // the parent went away: nobody to talk to
		}
	}
}

// event writes an object with an "event" key ("ready" releases held events).
func (e *emitter) event(v map[string]any) {
	line := marshalLine(v)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return
	}
	if v["event"] == "ready" {
		e.writeLocked(line)
		e.ready = true
		for _, p := range e.pending {
			e.writeLocked(p)
		}
		e.pending = nil
		return
	}
	if !e.ready {
		e.pending = append(e.pending, line)
		return
	}
	e.writeLocked(line)
}

// answer writes a command answer.
func (e *emitter) answer(v map[string]any) {
	line := marshalLine(v)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return
	}
	e.writeLocked(line)
}

// final writes the answer to "stop" and closes the stream for everything else.
func (e *emitter) final(v map[string]any) {
	line := marshalLine(v)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return
	}
	e.writeLocked(line)
	e.stopping = true
}

func (e *emitter) stop() {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
}

// ---------------------------------------------------------------- commands ---

// cmdError is a failed command; extra fields go into the answer next to "error".
type cmdError struct {
	msg   string
	extra map[string]any
}

func (e *cmdError) Error() string { return e.msg }

func fail(format string, args ...any) error {
	return &cmdError{msg: fmt.Sprintf(format, args...)}
}

type handler func(a *peerApp, raw json.RawMessage) (map[string]any, error)

func (a *peerApp) readCommands(r io.Reader) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if a.stopped.Load() {
			return
		}
		if len(bytes.TrimSpace(line)) > 0 {
			a.handleLine(line)
		}
		if err != nil {
			return // EOF (or a read error): stop
		}
	}
}

func (a *peerApp) handleLine(line []byte) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil || fields == nil {
		msg := "bad JSON: expected an object"
		if err != nil {
			msg = "bad JSON: " + err.Error()
		}
		a.out.answer(map[string]any{"id": nil, "ok": false, "error": msg})
		return
	}
	id := fields["id"]
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	var cmd string
	if raw, ok := fields["cmd"]; !ok || json.Unmarshal(raw, &cmd) != nil {
		a.out.answer(map[string]any{"id": id, "ok": false, "error": "cmd must be a string"})
		return
	}
	if cmd == "stop" {
		a.out.final(map[string]any{"id": id, "ok": true})
		a.shutdown(0)
		return
	}
	h, ok := handlers[cmd]
	if !ok {
		a.out.answer(map[string]any{"id": id, "ok": false, "error": fmt.Sprintf("unknown cmd %q", cmd)})
		return
	}
	// Commands run concurrently: answers can come out of order.
	go func() {
		var res map[string]any
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					logErr("panic in %s: %v\n%s", cmd, p, debug.Stack())
					err = fmt.Errorf("internal error (panic): %v", p)
				}
			}()
			res, err = h(a, line)
		}()
		ans := map[string]any{}
		for k, v := range res {
			ans[k] = v
		}
		if err != nil {
			if ce, ok := err.(*cmdError); ok {
				for k, v := range ce.extra {
					ans[k] = v
				}
			}
			ans["ok"] = false
			ans["error"] = err.Error()
		} else {
			ans["ok"] = true
		}
		ans["id"] = id
		a.out.answer(ans)
	}()
}

// decodeArgs decodes the command line into a handler's argument struct,
// refusing unknown fields so that typos in tests show up.
func decodeArgs(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fail("bad arguments: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}
