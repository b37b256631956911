// Package testimages builds gauntlet's test images without a registry.
//
// Two images are built, both as OCI image archives (an OCI image layout in a
// tar file) that `ctr -n k8s.io images import` and CRI-O's
// `oci-archive:FILE` transport both accept:
//
//   - PauseRef: the sandbox ("pause") image, a static Go binary built from
//     hack/images/pause at image-build time, which sleeps until SIGTERM or
//     SIGINT and reaps its children.
//   - BusyboxRef: Debian's busybox-static binary with every applet installed
//     as a hard link (a symlink breaks when the runtime masks its target),
//     /tmp, and an /etc/passwd with root. Its default command is `sh`.
//
// The image and archive formats come from github.com/google/go-containerregistry;
// this package only lays out the files of each layer. The output is
// deterministic: the same inputs (busybox binary, Go toolchain, pause source)
// give the same digests.
package testimages

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image references and file names of the built images.
const (
	PauseRef   = "localhost/gauntlet/pause:1.0"
	BusyboxRef = "localhost/gauntlet/busybox:1.35"

	PauseArchive   = "pause.oci.tar"
	BusyboxArchive = "busybox.oci.tar"
	ImagesFile     = "images.yaml"

	// PausePackage is the Go package built into the pause image's /pause.
	PausePackage = "github.com/gauntlet-conformance/gauntlet/hack/images/pause"
	// DefaultBusybox is where Debian's busybox-static installs its binary.
	DefaultBusybox = "/bin/busybox"

	// AnnotationContainerdImageName is the index annotation that
	// `ctr images import` uses, unchanged, as the image name. The OCI
	// ref.name annotation alone is not enough: without --base-name, ctr
	// drops a full reference found there.
	AnnotationContainerdImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI image layout's reference annotation.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// epoch is the timestamp of every file, history entry and config in the
// images, so that builds are reproducible.
var epoch = time.Unix(0, 0).UTC()

// Config says where the inputs of the images come from. The zero value uses
// `go` from PATH, PausePackage and DefaultBusybox.
type Config struct {
	// Go is the go command used to build the pause binary.
	Go string
	// GoDir is the directory `go build` runs in; it must be inside a module
	// that contains PausePkg. Empty means the current directory.
	GoDir string
	// PausePkg is the package (import path or ./dir) to build as /pause.
	PausePkg string
	// Busybox is the static busybox binary to install as /bin/busybox. It is
	// also run (`--list-full`) to learn where each applet goes, so it must
	// run on this machine.
	Busybox string
}

func (c Config) withDefaults() Config {
	if c.Go == "" {
		c.Go = "go"
	}
	if c.PausePkg == "" {
		c.PausePkg = PausePackage
	}
	if c.Busybox == "" {
		c.Busybox = DefaultBusybox
	}
	return c
}

// Built describes one image archive written by Build.
type Built struct {
	Ref    string
	Path   string
	Digest v1.Hash // manifest digest
}

// Result is what Build wrote.
type Result struct {
	Pause, Busybox Built
	ImagesFile     string
}

// Build builds both images into outDir as PauseArchive and BusyboxArchive,
// and writes ImagesFile next to them.
func Build(ctx context.Context, outDir string, cfg Config) (*Result, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	pause, err := Pause(ctx, cfg)
	if err != nil {
		return nil, err
	}
	busybox, err := Busybox(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res := &Result{
		Pause:      Built{Ref: PauseRef, Path: filepath.Join(outDir, PauseArchive)},
		Busybox:    Built{Ref: BusyboxRef, Path: filepath.Join(outDir, BusyboxArchive)},
		ImagesFile: filepath.Join(outDir, ImagesFile),
	}
	if res.Pause.Digest, err = WriteArchive(res.Pause.Path, pause, PauseRef); err != nil {
		return nil, err
	}
	if res.Busybox.Digest, err = WriteArchive(res.Busybox.Path, busybox, BusyboxRef); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(res.ImagesFile, ImagesYAML()); err != nil {
		return nil, err
	}
	return res, nil
}

// ImagesYAML is a test-images file in critest's format (its
// defaultTestContainerImage and webServerTestImage keys) plus gauntlet's
// sandboxImage key.
func ImagesYAML() []byte {
	return []byte(fmt.Sprintf(`# Test images built by hack/images (internal/testimages); import %s and %s first.
defaultTestContainerImage: %s
webServerTestImage: %s
sandboxImage: %s
`, BusyboxArchive, PauseArchive, BusyboxRef, BusyboxRef, PauseRef))
}

// Pause builds the sandbox image: /pause, a static Go binary, as entrypoint.
func Pause(ctx context.Context, cfg Config) (v1.Image, error) {
	cfg = cfg.withDefaults()
	bin, err := buildPause(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var t tree
	t.file("pause", 0o755, bin)
	return newImage(t, func(c *v1.Config) {
		c.Entrypoint = []string{"/pause"}
		c.WorkingDir = "/"
	}, "pause: CGO_ENABLED=0 go build "+cfg.PausePkg)
}

func buildPause(ctx context.Context, cfg Config) ([]byte, error) {
	dir, err := os.MkdirTemp("", "gauntlet-pause-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "pause")
	cmd := exec.CommandContext(ctx, cfg.Go, "build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -buildid=", "-o", out, cfg.PausePkg)
	cmd.Dir = cfg.GoDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the pause binary (%s): %v: %s", strings.Join(cmd.Args, " "), err, bytes.TrimSpace(msg))
	}
	return os.ReadFile(out)
}

// Busybox builds the busybox image from cfg.Busybox.
func Busybox(ctx context.Context, cfg Config) (v1.Image, error) {
	cfg = cfg.withDefaults()
	bin, err := os.ReadFile(cfg.Busybox)
	if err != nil {
		return nil, fmt.Errorf("reading busybox (install Debian's busybox-static: apt-get install -y busybox-static): %w", err)
	}
	msg, err := exec.CommandContext(ctx, cfg.Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w (is it a busybox binary for this machine?)", cfg.Busybox, err)
	}
	links, err := appletPaths(string(msg))
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", cfg.Busybox, err)
	}

	var t tree
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "var", "var/www", "home"} {
		t.dir(d, 0o755)
	}
	t.dir("root", 0o700)
	t.dir("tmp", 0o1777)
	t.dir("var/tmp", 0o1777)
	t.file("bin/busybox", 0o755, bin)
	for _, l := range links {
		t.link(l, "bin/busybox")
	}
	t.file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	t.file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	return newImage(t, func(c *v1.Config) {
		c.Cmd = []string{"sh"}
		c.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
		c.WorkingDir = "/"
	}, "busybox: "+cfg.Busybox+" with hard-linked applets")
}

// appletPaths turns `busybox --list-full` output into the paths of the hard
// links to install: each applet where busybox puts it (bin/sh,
// usr/sbin/httpd, ...) and, for one found elsewhere, also bin/NAME, so that
// /bin holds every applet. The result is sorted and has no duplicates.
func appletPaths(listFull string) ([]string, error) {
	set := map[string]bool{}
	for _, line := range strings.Split(listFull, "\n") {
		p := strings.Trim(strings.TrimSpace(line), "/")
		if p == "" {
			continue
		}
		if path.Clean(p) != p || strings.HasPrefix(p, "..") {
			return nil, fmt.Errorf("unexpected applet path %q", line)
		}
		set[p] = true
		set[path.Join("bin", path.Base(p))] = true
	}
	delete(set, "bin/busybox")
	if !set["bin/sh"] {
		return nil, errors.New("no sh applet listed")
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// newImage makes a single-layer OCI image of t with a config edited by
// configure.
func newImage(t tree, configure func(*v1.Config), createdBy string) (v1.Image, error) {
	layerTar, err := t.tar()
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: createdBy},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Created = v1.Time{Time: epoch}
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	configure(&cf.Config)
	return mutate.ConfigFile(img, cf)
}

// WriteArchive writes img as an OCI image archive at file: an OCI image
// layout (written by go-containerregistry's layout package) in a tar. The
// index entry carries ref both as the OCI ref.name annotation and as
// containerd's image name annotation. It returns the manifest digest.
func WriteArchive(file string, img v1.Image, ref string) (v1.Hash, error) {
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	dir, err := os.MkdirTemp("", "gauntlet-oci-")
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.WriteImage(img); err != nil {
		return v1.Hash{}, err
	}
	// The index entry is described here rather than by AppendImage, which
	// would also set artifactType (meant for artifacts, not images).
	mediaType, err := img.MediaType()
	if err != nil {
		return v1.Hash{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Hash{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := p.AppendDescriptor(v1.Descriptor{
		MediaType: mediaType,
		Size:      size,
		Digest:    digest,
		Platform:  cf.Platform(),
		Annotations: map[string]string{
			AnnotationRefName:             ref,
			AnnotationContainerdImageName: ref,
		},
	}); err != nil {
		return v1.Hash{}, err
	}
	var buf bytes.Buffer
	if err := tarDir(&buf, dir); err != nil {
		return v1.Hash{}, err
	}
	return digest, writeFileAtomic(file, buf.Bytes())
}

// tarDir writes the files under dir to w in a reproducible tar: sorted
// names, fixed times, owner root.
func tarDir(w io.Writer, dir string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, p := range names {
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case fi.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		case fi.Mode().IsRegular():
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
		default:
			return fmt.Errorf("%s: unexpected file type %v in an OCI layout", p, fi.Mode())
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return err
			}
		}
	}
	return tw.Close()
}

func writeFileAtomic(file string, data []byte) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// tree is the content of one image layer.
type tree struct{ entries []entry }

type entry struct {
	name string // slash-separated, relative to /
	mode int64  // permission bits, with 01000 for sticky
	typ  byte   // tar.TypeDir, tar.TypeReg or tar.TypeLink
	data []byte
	link string // for a hard link: the path it links to
}

func (t *tree) dir(name string, mode int64) {
	t.entries = append(t.entries, entry{name: name, mode: mode, typ: tar.TypeDir})
}

func (t *tree) file(name string, mode int64, data []byte) {
	t.entries = append(t.entries, entry{name: name, mode: mode, typ: tar.TypeReg, data: data})
}

func (t *tree) link(name, target string) {
	t.entries = append(t.entries, entry{name: name, typ: tar.TypeLink, link: target})
}

// tar renders the tree as an uncompressed layer tar. Missing parent
// directories are added (mode 0755); entries are written in an order that
// puts every directory before its content and every hard link after its
// target.
func (t *tree) tar() ([]byte, error) {
	byName := map[string]entry{}
	for _, e := range t.entries {
		if _, dup := byName[e.name]; dup {
			return nil, fmt.Errorf("layer: %s added twice", e.name)
		}
		byName[e.name] = e
	}
	for _, e := range t.entries {
		for d := path.Dir(e.name); d != "."; d = path.Dir(d) {
			if _, ok := byName[d]; !ok {
				byName[d] = entry{name: d, mode: 0o755, typ: tar.TypeDir}
			}
		}
	}
	all := make([]entry, 0, len(byName))
	for _, e := range byName {
		all = append(all, e)
	}
	// Links last; otherwise by path, which puts a directory before its content.
	sort.Slice(all, func(i, j int) bool {
		li, lj := all[i].typ == tar.TypeLink, all[j].typ == tar.TypeLink
		if li != lj {
			return lj
		}
		return all[i].name < all[j].name
	})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range all {
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     e.name,
			Mode:     e.mode,
			ModTime:  epoch,
			Uname:    "root",
			Gname:    "root",
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			h.Size = int64(len(e.data))
		case tar.TypeLink:
			target, ok := byName[e.link]
			if !ok || target.typ != tar.TypeReg {
				return nil, fmt.Errorf("layer: hard link %s to %s, which is not a file in the layer", e.name, e.link)
			}
			h.Linkname = e.link
			h.Mode = target.mode
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
