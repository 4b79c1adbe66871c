package archive

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzExtract checks that no input makes Extract write outside its
// destination: on error the destination does not exist, on success it is
// the only thing created, and no symlink in it resolves outside it. Each
// input is tried twice: as the compressed stream itself, which exercises the
// zstd decoder, and compressed as a tar stream, so mutations reach the tar
// reader and the entry checks instead of dying in the decoder. The seeds,
// here and in testdata/fuzz/FuzzExtract, come in both forms.
func FuzzExtract(f *testing.F) {
	valid := []entry{dirEntry("d/"), file("d/f", "hello"), symlink("d/l", "f"), file("top", "x")}
	traversal := []entry{file("../evil", "x")}
	chain := []entry{dirEntry("d/"), symlink("d/up", ".."), symlink("d/up/out", "../x"), file("d/up/out/f", "x")}
	absLink := []entry{symlink("link", "/etc"), file("link/passwd", "x")}
	hardLink := []entry{file("f", "a"), {hdr: tar.Header{Typeflag: tar.TypeLink, Name: "hl", Linkname: "f"}}}
	for _, entries := range [][]entry{valid, traversal, chain, absLink, hardLink} {
		f.Add(buildArchive(f, entries...))
		f.Add(buildTar(f, entries...))
	}
	compressed := buildArchive(f, valid...)
	f.Add(compressed[:len(compressed)/2])
	f.Add([]byte{})

	lim := Limits{MaxEntrySize: 4 << 10, MaxTotalSize: 16 << 10, MaxEntries: 32}
	f.Fuzz(func(t *testing.T, data []byte) {
		extractContained(t, data, lim)
		extractContained(t, encoder.EncodeAll(data, nil), lim)
	})
}

func extractContained(t *testing.T, stream []byte, lim Limits) {
	base, dest := sandbox(t)
	err := Extract(t.Context(), bytes.NewReader(stream), dest, lim)
	checkSandbox(t, base, err == nil)
	if err != nil {
		return
	}
	walkErr := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		// A link that resolves must resolve inside dest; one that dangles
		// or loops cannot lead anywhere.
		if real, err := filepath.EvalSymlinks(p); err == nil && real != dest && !strings.HasPrefix(real, dest+string(filepath.Separator)) {
			t.Errorf("symlink %s resolves outside dest to %s", p, real)
		}
		return nil
	})
	if walkErr != nil {
		t.Fatal(walkErr)
	}
}
