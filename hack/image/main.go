// Command image builds the netintent operator's container image without a
// Docker engine, and pushes it.
//
// It cross-compiles the operator as a static binary for each platform
// (CGO_ENABLED=0, -trimpath, no version control stamp, fixed linker flags) and puts it alone on an
// empty base: one layer holding /netintent, run as the numeric user
// 65532:65532, no shell, no passwd file, no libc. The images of all
// platforms go into one OCI image index, written as an OCI image layout
// (<out>/oci) and as the same layout in one tar file (<out>/netintent.tar).
// Every timestamp is the commit's time (or SOURCE_DATE_EPOCH) and every
// archive is written in a fixed order, so the same commit gives the same
// digest on every build.
//
//	go run ./hack/image -out bin/image                  # build
//	go run ./hack/image -out bin/image -push REF        # push what was built
//
// Pushing uses the credentials of the Docker config (~/.docker/config.json,
// $DOCKER_CONFIG) and its credential helpers; no Docker engine is needed.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// binaryPath is where the operator lives in the image, and its
	// entrypoint.
	binaryPath = "/netintent"
	// user is the image's user: numeric, so that no passwd file is needed
	// and Kubernetes can check runAsNonRoot; 65532 is distroless's nonroot.
	user = "65532:65532"
	// ldflags are the linker flags of the operator in the image: no symbol
	// table and no DWARF (stack traces keep function names and lines).
	ldflags = "-s -w"

	labelSource   = "org.opencontainers.image.source"
	labelRevision = "org.opencontainers.image.revision"
	labelVersion  = "org.opencontainers.image.version"
	labelCreated  = "org.opencontainers.image.created"
	labelTitle    = "org.opencontainers.image.title"
	// refNameAnnotation names the index in the layout's index.json.
	refNameAnnotation = "org.opencontainers.image.ref.name"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		out       = flag.String("out", "bin/image", "the folder to write the binaries, the OCI layout (oci/) and its tar file (netintent.tar) to")
		pkg       = flag.String("pkg", ".", "the operator's main package")
		platforms = flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch pairs to build for")
		source    = flag.String("source", "https://github.com/netintent/netintent", "the "+labelSource+" label")
		revision  = flag.String("revision", "", "the "+labelRevision+" label (default: the commit, git rev-parse HEAD)")
		version   = flag.String("version", "", "the "+labelVersion+" label (default: git describe --tags --always --dirty)")
		tag       = flag.String("tag", "latest", "the index's "+refNameAnnotation+" in the layout")
		push      = flag.String("push", "", "push the index already built in -out to this reference (registry/repository:tag) instead of building")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	layoutDir := filepath.Join(*out, "oci")
	if *push != "" {
		return pushIndex(ctx, layoutDir, *push)
	}

	plats, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	meta := metadata{Source: *source, Revision: *revision, Version: *version}
	if meta.Revision == "" {
		if meta.Revision, err = git(ctx, "rev-parse", "HEAD"); err != nil {
			return err
		}
	}
	if meta.Version == "" {
		if meta.Version, err = git(ctx, "describe", "--tags", "--always", "--dirty"); err != nil {
			return err
		}
	}
	if meta.Created, err = sourceDate(ctx); err != nil {
		return err
	}

	binaries := make([]platformBinary, 0, len(plats))
	for _, p := range plats {
		path := filepath.Join(*out, p.OS+"-"+p.Architecture, "netintent")
		if err := buildBinary(ctx, *pkg, p, path); err != nil {
			return err
		}
		binaries = append(binaries, platformBinary{Platform: p, Path: path})
	}
	idx, err := buildIndex(binaries, meta)
	if err != nil {
		return err
	}
	if err := writeLayout(layoutDir, idx, *tag); err != nil {
		return err
	}
	tarPath := filepath.Join(*out, "netintent.tar")
	if err := writeTar(tarPath, layoutDir, meta.Created); err != nil {
		return err
	}
	return describe(os.Stdout, idx, layoutDir, tarPath)
}

// metadata is what the image says about where it comes from.
type metadata struct {
	Source, Revision, Version string
	// Created is every timestamp in the image: its config, its history and
	// its files.
	Created time.Time
}

// platformBinary is the operator built for one platform.
type platformBinary struct {
	Platform v1.Platform
	Path     string
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for p := range strings.SplitSeq(s, ",") {
		osName, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || osName == "" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("platform %q: want os/arch, such as linux/amd64", p)
		}
		out = append(out, v1.Platform{OS: osName, Architecture: arch})
	}
	return out, nil
}

func git(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// sourceDate is SOURCE_DATE_EPOCH when set, else the time of the commit.
func sourceDate(ctx context.Context) (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		var err error
		if s, err = git(ctx, "log", "-1", "--format=%ct"); err != nil {
			return time.Time{}, err
		}
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("source date %q: %w", s, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// buildBinary cross-compiles the operator for p into path: static, without
// the builder's paths, with fixed linker flags. The binary records no
// version control state, whatever GOFLAGS says: it is the same built from
// a checkout or from an archive of it, and the image's labels name the
// commit.
func buildBinary(ctx context.Context, pkg string, p v1.Platform, path string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ldflags, "-o", path, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s for %s/%s: %w", pkg, p.OS, p.Architecture, err)
	}
	return nil
}

// buildIndex makes an image of each binary and puts them in an OCI image
// index, in the order given, annotated like the images are labelled.
func buildIndex(binaries []platformBinary, meta metadata) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range binaries {
		img, err := buildImage(b, meta)
		if err != nil {
			return nil, err
		}
		p := b.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        plainImage{img},
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	annotated, ok := mutate.Annotations(idx, meta.labels()).(v1.ImageIndex)
	if !ok {
		return nil, errors.New("annotating the index did not give an index")
	}
	return annotated, nil
}

// plainImage is an image whose descriptor in an index has no artifactType:
// the library would set it to the config's media type, which says
// "artifact" of what is a plain image, and docker buildx and the OCI
// spec's examples leave it out.
type plainImage struct{ v1.Image }

func (plainImage) ArtifactType() (string, error) { return "", nil }

func (m metadata) labels() map[string]string {
	return map[string]string{
		labelSource:   m.Source,
		labelRevision: m.Revision,
		labelVersion:  m.Version,
		labelCreated:  m.Created.Format(time.RFC3339),
		labelTitle:    "netintent",
	}
}

// buildImage makes the image of one platform: an empty base, one layer with
// the binary, and a config that runs it as user.
func buildImage(b platformBinary, meta metadata) (v1.Image, error) {
	bin, err := os.ReadFile(b.Path)
	if err != nil {
		return nil, fmt.Errorf("reading the binary: %w", err)
	}
	layerTar, err := binaryLayer(bin, meta.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("making the layer: %w", err)
	}

	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: meta.Created}
	img, err := mutate.ConfigFile(base, &v1.ConfigFile{
		Architecture: b.Platform.Architecture,
		OS:           b.Platform.OS,
		Variant:      b.Platform.Variant,
		Created:      created,
		Config: v1.Config{
			User:       user,
			Entrypoint: []string{binaryPath},
			WorkingDir: "/",
			Labels:     meta.labels(),
		},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, fmt.Errorf("setting the config: %w", err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "go build -trimpath -buildvcs=false -ldflags=" + ldflags + " (CGO_ENABLED=0 GOOS=" + b.Platform.OS + " GOARCH=" + b.Platform.Architecture + ")",
			Comment:   "the netintent operator, " + binaryPath,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("adding the layer: %w", err)
	}
	return img, nil
}

// binaryLayer is a gzipped tar holding only the binary at binaryPath, owned
// by root, readable and executable by all, timestamped mtime. gzip's header
// carries no name and no time.
func binaryLayer(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     strings.TrimPrefix(binaryPath, "/"),
		Mode:     0o755,
		Size:     int64(len(bin)),
		ModTime:  mtime,
		Format:   tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing the layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing the layer: %w", err)
	}
	return buf.Bytes(), nil
}

// writeLayout writes idx as a fresh OCI image layout in dir, its
// index.json naming it tag.
func writeLayout(dir string, idx v1.ImageIndex, tag string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: tag})); err != nil {
		return fmt.Errorf("writing the index into %s: %w", dir, err)
	}
	return nil
}

// writeTar puts the layout in dir into one tar file, entries in lexical
// order, owned by root, timestamped mtime, directories 0755 and files 0644.
func writeTar(path, dir string, mtime time.Time) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, int64(len(data))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		default:
			return fmt.Errorf("%s: not a file or folder", p)
		}
	})
	if err != nil {
		return fmt.Errorf("archiving %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("archiving %s: %w", dir, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// describe prints the index's digest, each platform's image and where they
// were written.
func describe(w io.Writer, idx v1.ImageIndex, layoutDir, tarPath string) error {
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "index %s\n", digest)
	for _, desc := range m.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return err
		}
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		var size int64
		for _, l := range layers {
			s, err := l.Size()
			if err != nil {
				return err
			}
			size += s
		}
		fmt.Fprintf(w, "  %s/%s %s (layer %.1f MiB compressed)\n", desc.Platform.OS, desc.Platform.Architecture, desc.Digest, float64(size)/(1<<20))
	}
	fi, err := os.Stat(tarPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "OCI layout %s\nOCI archive %s (%.1f MiB)\n", layoutDir, tarPath, float64(fi.Size())/(1<<20))
	return nil
}

// readIndex is the index that writeLayout wrote into dir.
func readIndex(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the layout %s (run make image first): %w", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("%s: want exactly one image index in index.json, found %d entries", dir, len(m.Manifests))
	}
	return top.ImageIndex(m.Manifests[0].Digest)
}

// pushIndex pushes the index in the layout at dir to ref.
func pushIndex(ctx context.Context, dir, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("reference %q: %w", ref, err)
	}
	idx, err := readIndex(dir)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return fmt.Errorf("pushing to %s: %w", r, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", r.Context(), digest)
	return nil
}
