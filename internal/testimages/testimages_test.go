package testimages

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// layerFile is one entry of an image's only layer.
type layerFile struct {
	hdr  *tar.Header
	data []byte
}

// openArchive unpacks an OCI archive written by WriteArchive and returns the
// index entry and image it holds.
func openArchive(t *testing.T, file string) (v1.Descriptor, v1.Image) {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unexpected entry %s (type %c)", file, h.Name, h.Typeflag)
		}
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("%s is not an OCI layout: %v", file, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%s: %d manifests in index.json, want 1", file, len(im.Manifests))
	}
	desc := im.Manifests[0]
	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	return desc, img
}

// layerFiles reads the image's single layer.
func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]layerFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = layerFile{hdr: h, data: data}
	}
}

func checkIndexEntry(t *testing.T, desc v1.Descriptor, img v1.Image, ref string, want v1.Hash) {
	t.Helper()
	if desc.Digest != want {
		t.Errorf("%s: index digest %s, Build said %s", ref, desc.Digest, want)
	}
	for _, k := range []string{AnnotationRefName, AnnotationContainerdImageName} {
		if got := desc.Annotations[k]; got != ref {
			t.Errorf("%s: annotation %s = %q, want %q", ref, k, got, ref)
		}
	}
	if desc.Platform == nil || desc.Platform.OS != "linux" {
		t.Errorf("%s: index platform %+v, want linux", ref, desc.Platform)
	}
	if d, err := img.Digest(); err != nil || d != want {
		t.Errorf("%s: image digest %s (%v), want %s", ref, d, err, want)
	}
}

func TestBuild(t *testing.T) {
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("%s missing (apt-get install -y busybox-static): %v", DefaultBusybox, err)
	}
	ctx := context.Background()
	out := t.TempDir()
	res, err := Build(ctx, out, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PauseArchive, BusyboxArchive, ImagesFile} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("Build did not write %s: %v", name, err)
		}
	}

	t.Run("pause", func(t *testing.T) {
		desc, img := openArchive(t, res.Pause.Path)
		checkIndexEntry(t, desc, img, PauseRef, res.Pause.Digest)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"/pause"}; !reflect.DeepEqual(cf.Config.Entrypoint, want) {
			t.Errorf("entrypoint %q, want %q", cf.Config.Entrypoint, want)
		}
		files := layerFiles(t, img)
		p, ok := files["pause"]
		if !ok || p.hdr.Typeflag != tar.TypeReg || p.hdr.Mode&0o111 == 0 {
			t.Fatalf("layer has no executable /pause: %+v", p.hdr)
		}
		bin, err := elf.NewFile(bytes.NewReader(p.data))
		if err != nil {
			t.Fatalf("/pause is not an ELF binary: %v", err)
		}
		for _, prog := range bin.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("/pause has an ELF interpreter: it is not static")
			}
		}
	})

	t.Run("busybox", func(t *testing.T) {
		desc, img := openArchive(t, res.Busybox.Path)
		checkIndexEntry(t, desc, img, BusyboxRef, res.Busybox.Digest)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"sh"}; !reflect.DeepEqual(cf.Config.Cmd, want) || len(cf.Config.Entrypoint) != 0 {
			t.Errorf("entrypoint %q cmd %q, want no entrypoint and cmd %q", cf.Config.Entrypoint, cf.Config.Cmd, want)
		}
		files := layerFiles(t, img)
		bb, ok := files["bin/busybox"]
		if !ok || bb.hdr.Typeflag != tar.TypeReg || bb.hdr.Mode&0o111 == 0 {
			t.Fatalf("layer has no executable /bin/busybox: %+v", bb.hdr)
		}
		links := 0
		for name, f := range files {
			switch f.hdr.Typeflag {
			case tar.TypeSymlink:
				t.Errorf("%s is a symlink; applets must be hard links", name)
			case tar.TypeLink:
				links++
				if f.hdr.Linkname != "bin/busybox" {
					t.Errorf("%s links to %q, want bin/busybox", name, f.hdr.Linkname)
				}
			}
		}
		if links < 200 {
			t.Errorf("%d hard links, want every applet (>200)", links)
		}
		for _, name := range []string{"bin/sh", "bin/nc", "bin/cat", "bin/sleep", "usr/sbin/httpd", "bin/httpd", "usr/bin/nc"} {
			if f, ok := files[name]; !ok || f.hdr.Typeflag != tar.TypeLink {
				t.Errorf("%s is not a hard link in the layer", name)
			}
		}
		if tmp, ok := files["tmp"]; !ok || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode != 0o1777 {
			t.Errorf("/tmp missing or not mode 1777")
		}
		if pw := files["etc/passwd"]; !strings.HasPrefix(string(pw.data), "root:x:0:0:") {
			t.Errorf("/etc/passwd does not start with root: %q", pw.data)
		}
	})

	t.Run("images.yaml", func(t *testing.T) {
		data, err := os.ReadFile(res.ImagesFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"defaultTestContainerImage: " + BusyboxRef,
			"webServerTestImage: " + BusyboxRef,
			"sandboxImage: " + PauseRef,
		} {
			if !strings.Contains(string(data), want+"\n") {
				t.Errorf("images.yaml lacks %q:\n%s", want, data)
			}
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		again, err := Build(ctx, t.TempDir(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		for _, pair := range [][2]Built{{res.Pause, again.Pause}, {res.Busybox, again.Busybox}} {
			if pair[0].Digest != pair[1].Digest {
				t.Errorf("%s: digest %s then %s", pair[0].Ref, pair[0].Digest, pair[1].Digest)
			}
			a, _ := os.ReadFile(pair[0].Path)
			b, _ := os.ReadFile(pair[1].Path)
			if !bytes.Equal(a, b) {
				t.Errorf("%s: archives differ between two builds", pair[0].Ref)
			}
		}
	})
}

func TestAppletPaths(t *testing.T) {
	got, err := appletPaths("bin/busybox\nbin/sh\nusr/sbin/httpd\nlinuxrc\n\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bin/httpd", "bin/linuxrc", "bin/sh", "linuxrc", "usr/sbin/httpd"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("appletPaths = %q, want %q", got, want)
	}
	if _, err := appletPaths("bin/ls\n"); err == nil {
		t.Error("no error for a list without sh")
	}
	if _, err := appletPaths("bin/sh\n../etc/x\n"); err == nil {
		t.Error("no error for a path leaving the root")
	}
}

func TestTreeRejectsBadLinks(t *testing.T) {
	var tr tree
	tr.link("bin/sh", "bin/busybox")
	if _, err := tr.tar(); err == nil {
		t.Error("no error for a hard link to a missing file")
	}
	var dup tree
	dup.file("a", 0o644, nil)
	dup.file("a", 0o644, nil)
	if _, err := dup.tar(); err == nil {
		t.Error("no error for a file added twice")
	}
}
