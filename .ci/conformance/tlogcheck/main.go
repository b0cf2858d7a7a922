// Command tlogcheck verifies The Substrate's transparency-log artifacts with
// the Go project's own signed-note and tlog packages (golang.org/x/mod/sumdb),
// i.e. with code nobody on our side wrote.
//
// Usage: tlogcheck DIR
//
// DIR must hold commons.vkey, receipt.json and consistency.json as written by
// `substrate demo --artifacts DIR`. One line is printed per check, either
// "ok   <what>" or "FAIL <what>: <why>"; the exit status is non-zero if any
// check failed, including a negative control that was wrongly accepted.
//
// Only golang.org/x/mod/sumdb/note, golang.org/x/mod/sumdb/tlog and the
// standard library are used, so that this builds in GOPATH mode against
// Debian's golang-golang-x-mod-dev.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	proofHeader = "c2sp.org/tlog-proof@v1"
	stateKey    = "substrate-state"
)

var failures int

func pass(what string) { fmt.Printf("ok   %s\n", what) }

// info prints context that is not itself a check.
func info(what string) { fmt.Printf("info %s\n", what) }

func fail(what string, why error) {
	failures++
	fmt.Printf("FAIL %s: %v\n", what, why)
}

// check prints the outcome of one check and reports whether it passed.
func check(what string, err error) bool {
	if err != nil {
		fail(what, err)
		return false
	}
	pass(what)
	return true
}

// mustReject is for negative controls: err == nil means a tampered input was
// accepted, which is a failure of the checker (or of the artifacts' binding).
func mustReject(what string, err error) {
	if err == nil {
		fail("negative control: "+what, errors.New("tampered input was ACCEPTED"))
		return
	}
	pass("negative control: " + what + " (rejected: " + oneLine(err) + ")")
}

func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

var strictB64 = base64.StdEncoding.Strict()

// decodeB64 decodes canonical standard base64 (RFC 4648 section 4, padded).
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("base64 contains a line break")
	}
	b, err := strictB64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not canonical standard base64: %v", err)
	}
	return b, nil
}

func decodeHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := decodeB64(s)
	if err != nil {
		return h, err
	}
	if len(b) != tlog.HashSize {
		return h, fmt.Errorf("hash is %d bytes, want %d", len(b), tlog.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

// parseDecimal parses an ASCII decimal with no sign and no leading zeroes
// (except "0" itself), as C2SP tlog-checkpoint and tlog-proof require.
func parseDecimal(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty number")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a plain ASCII decimal", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %v", s, err)
	}
	return n, nil
}

// ---- tlog-proof@v1 -------------------------------------------------------

type inclusionProof struct {
	extra      []byte
	hasExtra   bool
	index      int64
	hashes     tlog.RecordProof
	checkpoint []byte // the signed note, verbatim
}

// parseProof parses a C2SP tlog-proof@v1 text.
func parseProof(text string) (*inclusionProof, error) {
	rest := text
	next := func() (string, error) {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			return "", errors.New("unterminated line (every line must end in \\n)")
		}
		line := rest[:i]
		rest = rest[i+1:]
		return line, nil
	}
	p := &inclusionProof{}

	line, err := next()
	if err != nil {
		return nil, err
	}
	if line != proofHeader {
		return nil, fmt.Errorf("first line is %q, want %q", line, proofHeader)
	}
	if line, err = next(); err != nil {
		return nil, err
	}
	if strings.HasPrefix(line, "extra ") {
		if p.extra, err = decodeB64(strings.TrimPrefix(line, "extra ")); err != nil {
			return nil, fmt.Errorf("extra line: %v", err)
		}
		p.hasExtra = true
		if line, err = next(); err != nil {
			return nil, err
		}
	}
	if !strings.HasPrefix(line, "index ") {
		return nil, fmt.Errorf("expected \"index <n>\" line, got %q", line)
	}
	if p.index, err = parseDecimal(strings.TrimPrefix(line, "index ")); err != nil {
		return nil, fmt.Errorf("index line: %v", err)
	}
	for {
		if line, err = next(); err != nil {
			return nil, fmt.Errorf("inclusion proof hashes: %v (missing blank line before checkpoint?)", err)
		}
		if line == "" {
			break
		}
		h, err := decodeHash(line)
		if err != nil {
			return nil, fmt.Errorf("inclusion proof hash %d: %v", len(p.hashes), err)
		}
		p.hashes = append(p.hashes, h)
	}
	if rest == "" {
		return nil, errors.New("no checkpoint after the blank line")
	}
	p.checkpoint = []byte(rest)
	return p, nil
}

// ---- checkpoints -----------------------------------------------------------

type checkpoint struct {
	origin     string
	size       int64
	root       tlog.Hash
	state      []byte
	extensions []string
	cosigs     int // signatures by keys we do not know (e.g. witnesses)
}

// openCheckpoint verifies the signed note with the commons verifier and
// parses its text as a C2SP tlog-checkpoint.
func openCheckpoint(msg []byte, v note.Verifier) (*checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("note.Open: %v", err)
	}
	return parseCheckpointText(n.Text, v.Name(), len(n.UnverifiedSigs))
}

func parseCheckpointText(text, origin string, cosigs int) (*checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("checkpoint text does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return nil, fmt.Errorf("checkpoint has %d lines, want at least 3", len(lines))
	}
	c := &checkpoint{origin: lines[0], cosigs: cosigs}
	if c.origin != origin {
		return nil, fmt.Errorf("origin line %q differs from verifier key name %q", c.origin, origin)
	}
	var err error
	if c.size, err = parseDecimal(lines[1]); err != nil {
		return nil, fmt.Errorf("size line: %v", err)
	}
	if c.root, err = decodeHash(lines[2]); err != nil {
		return nil, fmt.Errorf("root hash line: %v", err)
	}
	states := 0
	for i, ext := range lines[3:] {
		if ext == "" {
			return nil, fmt.Errorf("extension line %d is empty", i+1)
		}
		c.extensions = append(c.extensions, ext)
		if ext == stateKey || strings.HasPrefix(ext, stateKey+" ") {
			states++
			b, err := decodeB64(strings.TrimPrefix(ext, stateKey+" "))
			if err != nil {
				return nil, fmt.Errorf("%s line: %v", stateKey, err)
			}
			if len(b) != 32 {
				return nil, fmt.Errorf("%s value is %d bytes, want 32", stateKey, len(b))
			}
			c.state = b
		}
	}
	switch states {
	case 0:
		return nil, fmt.Errorf("no %q extension line", stateKey+" <base64 32 bytes>")
	case 1:
	default:
		return nil, fmt.Errorf("%d %q extension lines, want exactly 1", states, stateKey)
	}
	return c, nil
}

// ---- files -----------------------------------------------------------------

func readVerifier(dir string) (note.Verifier, error) {
	b, err := os.ReadFile(filepath.Join(dir, "commons.vkey"))
	if err != nil {
		return nil, err
	}
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	if strings.ContainsAny(s, "\r\n") || strings.TrimSpace(s) != s {
		return nil, errors.New("commons.vkey must be exactly one line (optionally newline-terminated), no stray whitespace")
	}
	v, err := note.NewVerifier(s)
	if err != nil {
		return nil, fmt.Errorf("note.NewVerifier: %v", err)
	}
	return v, nil
}

type receiptFile struct {
	Proof    *string          `json:"proof"`
	Entry    *string          `json:"entry"`
	LogIndex *json.RawMessage `json:"log_index"`
}

type consistencyFile struct {
	Old   *string   `json:"old_checkpoint"`
	New   *string   `json:"new_checkpoint"`
	Proof *[]string `json:"proof"`
}

func readJSON(path string, into interface{}) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("%s: %v", filepath.Base(path), err)
	}
	if dec.More() {
		return fmt.Errorf("%s: trailing data after the JSON value", filepath.Base(path))
	}
	return nil
}

// ---- bit flipping ------------------------------------------------------------

func flipped(b []byte, i int, bit uint) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 1 << bit
	return c
}

// checkpointTextSpan returns the byte range of the signed text in a note
// (everything up to and including the newline before the blank line).
func checkpointTextSpan(msg []byte) (int, bool) {
	split := bytes.LastIndex(msg, []byte("\n\n"))
	if split < 0 {
		return 0, false
	}
	return split + 1, true
}

// replaceLine returns msg with its line number k (0-based) replaced.
func replaceLine(msg []byte, k int, newLine string) []byte {
	lines := strings.SplitAfter(string(msg), "\n")
	lines[k] = newLine + "\n"
	return []byte(strings.Join(lines, ""))
}

// ---- main --------------------------------------------------------------------

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck DIR")
		os.Exit(2)
	}
	dir := os.Args[1]

	v, err := readVerifier(dir)
	if !check("commons.vkey parses as a signed-note Ed25519 verifier key", err) {
		finish()
	}
	info(fmt.Sprintf("verifier name %q, key hash %08x", v.Name(), v.KeyHash()))

	inclusion(dir, v)
	consistency(dir, v)
	finish()
}

func finish() {
	if failures > 0 {
		fmt.Printf("tlogcheck: %d check(s) FAILED\n", failures)
		os.Exit(1)
	}
	fmt.Println("tlogcheck: all checks passed")
	os.Exit(0)
}

var checkpointsSeen = map[int64]tlog.Hash{}

// remember records a verified checkpoint; two verified checkpoints of the
// same size must have the same root (otherwise the log has forked).
func remember(what string, c *checkpoint) {
	if prev, ok := checkpointsSeen[c.size]; ok {
		if prev != c.root {
			fail("same-size checkpoints agree", fmt.Errorf("%s has size %d but a different root than an earlier checkpoint of that size", what, c.size))
		} else {
			pass(fmt.Sprintf("same-size checkpoints agree (size %d)", c.size))
		}
		return
	}
	checkpointsSeen[c.size] = c.root
}

func inclusion(dir string, v note.Verifier) {
	var r receiptFile
	if !check("receipt.json parses", readJSON(filepath.Join(dir, "receipt.json"), &r)) {
		return
	}
	if r.Proof == nil || r.Entry == nil {
		fail("receipt.json has string fields \"proof\" and \"entry\"", errors.New("missing"))
		return
	}
	entry, err := decodeB64(*r.Entry)
	if !check("receipt.entry is canonical standard base64", err) {
		return
	}
	if len(entry) < 9 {
		fail("receipt.entry holds 8-byte time || envelope", fmt.Errorf("only %d bytes", len(entry)))
	}

	p, err := parseProof(*r.Proof)
	if !check("receipt.proof parses as c2sp.org/tlog-proof@v1", err) {
		return
	}
	info(fmt.Sprintf("proof: index %d, %d hash(es), extra=%v", p.index, len(p.hashes), p.hasExtra))

	if r.LogIndex != nil {
		idx, err := parseDecimal(strings.TrimSpace(string(*r.LogIndex)))
		if err == nil && idx != p.index {
			err = fmt.Errorf("receipt.log_index is %d but the proof's index is %d", idx, p.index)
		}
		check("receipt.log_index equals the tlog-proof index", err)
	}

	c, err := openCheckpoint(p.checkpoint, v)
	if !check("proof checkpoint: signature verifies with commons.vkey and text is a well-formed checkpoint", err) {
		return
	}
	info(fmt.Sprintf("proof checkpoint: origin %q, size %d, root %s, %s present, %d extension line(s), %d other signature(s)",
		c.origin, c.size, c.root, stateKey, len(c.extensions), c.cosigs))
	remember("proof checkpoint", c)

	leaf := tlog.RecordHash(entry)
	err = tlog.CheckRecord(p.hashes, c.size, c.root, p.index, leaf)
	if !check(fmt.Sprintf("inclusion: tlog.CheckRecord(entry at index %d in tree of size %d)", p.index, c.size), err) {
		return
	}

	// Negative controls. Each tampered input must be rejected.
	if len(entry) > 0 {
		for _, pos := range []int{0, len(entry) / 2, len(entry) - 1} {
			bad := flipped(entry, pos, 0)
			mustReject(fmt.Sprintf("leaf with bit flipped at byte %d", pos),
				tlog.CheckRecord(p.hashes, c.size, c.root, p.index, tlog.RecordHash(bad)))
		}
	}
	if len(p.hashes) == 0 {
		info("negative control: proof-hash bit flip not applicable (empty proof: tree of size 1)")
	}
	for i := range p.hashes {
		bad := append(tlog.RecordProof(nil), p.hashes...)
		bad[i][i%tlog.HashSize] ^= 0x80
		mustReject(fmt.Sprintf("inclusion proof with bit flipped in hash %d", i),
			tlog.CheckRecord(bad, c.size, c.root, p.index, leaf))
	}
	extended := append(append(tlog.RecordProof(nil), p.hashes...), leaf)
	mustReject("inclusion proof with a superfluous extra hash", tlog.CheckRecord(extended, c.size, c.root, p.index, leaf))
	if p.index+1 < c.size {
		mustReject("same proof claimed for index+1", tlog.CheckRecord(p.hashes, c.size, c.root, p.index+1, leaf))
	} else if p.index > 0 {
		mustReject("same proof claimed for index-1", tlog.CheckRecord(p.hashes, c.size, c.root, p.index-1, leaf))
	}
	negativeCheckpointControls("proof checkpoint", p.checkpoint, v)
}

// negativeCheckpointControls tampers with the signed text of a checkpoint
// note: every single-bit flip, plus re-encoded well-formed edits of the
// size and root lines, must fail to open.
func negativeCheckpointControls(what string, msg []byte, v note.Verifier) {
	end, ok := checkpointTextSpan(msg)
	if !ok {
		fail("negative control: "+what, errors.New("cannot locate signed text"))
		return
	}
	accepted := 0
	var firstAccepted string
	for i := 0; i < end; i++ {
		for bit := uint(0); bit < 8; bit++ {
			if _, err := openCheckpoint(flipped(msg, i, bit), v); err == nil {
				if accepted == 0 {
					firstAccepted = fmt.Sprintf("byte %d bit %d", i, bit)
				}
				accepted++
			}
		}
	}
	if accepted > 0 {
		fail(fmt.Sprintf("negative control: %s, every single-bit flip of the signed text", what),
			fmt.Errorf("%d tampered variant(s) ACCEPTED, first at %s", accepted, firstAccepted))
	} else {
		pass(fmt.Sprintf("negative control: %s, all %d single-bit flips of the signed text rejected", what, end*8))
	}

	// Well-formed but different checkpoints: only the signature can catch these.
	lines := strings.Split(string(msg[:end]), "\n")
	if len(lines) >= 3 {
		if root, err := decodeHash(lines[2]); err == nil {
			root[0] ^= 1
			bad := replaceLine(msg, 2, base64.StdEncoding.EncodeToString(root[:]))
			_, err := openCheckpoint(bad, v)
			mustReject(what+" with a bit flipped in the root hash (re-encoded, well-formed)", err)
		}
		if size, err := parseDecimal(lines[1]); err == nil {
			bad := replaceLine(msg, 1, strconv.FormatInt(size^1, 10))
			_, err := openCheckpoint(bad, v)
			mustReject(what+" with a bit flipped in the tree size (well-formed)", err)
		}
	}
}

func consistency(dir string, v note.Verifier) {
	var f consistencyFile
	if !check("consistency.json parses", readJSON(filepath.Join(dir, "consistency.json"), &f)) {
		return
	}
	if f.Old == nil || f.New == nil || f.Proof == nil {
		fail("consistency.json has old_checkpoint, new_checkpoint and proof", errors.New("missing field"))
		return
	}
	oldC, err := openCheckpoint([]byte(*f.Old), v)
	if !check("consistency old_checkpoint: signature verifies and text is a well-formed checkpoint", err) {
		return
	}
	newC, err := openCheckpoint([]byte(*f.New), v)
	if !check("consistency new_checkpoint: signature verifies and text is a well-formed checkpoint", err) {
		return
	}
	remember("old_checkpoint", oldC)
	remember("new_checkpoint", newC)
	if oldC.size < 1 || oldC.size >= newC.size {
		fail("consistency sizes", fmt.Errorf("want 1 <= old size < new size, got old %d new %d", oldC.size, newC.size))
		return
	}
	proof := make(tlog.TreeProof, 0, len(*f.Proof))
	for i, s := range *f.Proof {
		h, err := decodeHash(s)
		if err != nil {
			fail("consistency proof parses", fmt.Errorf("hash %d: %v", i, err))
			return
		}
		proof = append(proof, h)
	}
	err = tlog.CheckTree(proof, newC.size, newC.root, oldC.size, oldC.root)
	if !check(fmt.Sprintf("consistency: tlog.CheckTree(size %d is a prefix of size %d, %d hash(es))", oldC.size, newC.size, len(proof)), err) {
		return
	}

	for i := range proof {
		bad := append(tlog.TreeProof(nil), proof...)
		bad[i][(i+7)%tlog.HashSize] ^= 0x01
		mustReject(fmt.Sprintf("consistency proof with bit flipped in hash %d", i),
			tlog.CheckTree(bad, newC.size, newC.root, oldC.size, oldC.root))
	}
	badOld := oldC.root
	badOld[31] ^= 0x40
	mustReject("consistency against an old root with a bit flipped",
		tlog.CheckTree(proof, newC.size, newC.root, oldC.size, badOld))
	badNew := newC.root
	badNew[0] ^= 0x02
	mustReject("consistency against a new root with a bit flipped",
		tlog.CheckTree(proof, newC.size, badNew, oldC.size, oldC.root))
	negativeCheckpointControls("new_checkpoint", []byte(*f.New), v)
}
