package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

var testMeta = metadata{
	Source:   "https://example.com/netintent",
	Revision: "0123456789abcdef0123456789abcdef01234567",
	Version:  "v0.0.0-test",
	Created:  time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
}

// fakeBinaries writes one file a platform, each with different contents,
// where the operator's binaries would be.
func fakeBinaries(t *testing.T) []platformBinary {
	t.Helper()
	dir := t.TempDir()
	var out []platformBinary
	for _, arch := range []string{"amd64", "arm64"} {
		path := filepath.Join(dir, arch, "netintent")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("the operator for "+arch), 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, platformBinary{Platform: v1.Platform{OS: "linux", Architecture: arch}, Path: path})
	}
	return out
}

func TestIndex(t *testing.T) {
	bins := fakeBinaries(t)
	idx, err := buildIndex(bins, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	if mt, _ := idx.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", mt, types.OCIImageIndex)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations[labelRevision] != testMeta.Revision || m.Annotations[labelSource] != testMeta.Source {
		t.Errorf("index annotations %v lack the revision and source", m.Annotations)
	}
	if len(m.Manifests) != len(bins) {
		t.Fatalf("index has %d manifests, want %d", len(m.Manifests), len(bins))
	}
	for i, desc := range m.Manifests {
		b := bins[i]
		if desc.Platform == nil || !desc.Platform.Equals(b.Platform) {
			t.Errorf("manifest %d is for %v, want %v", i, desc.Platform, b.Platform)
		}
		if desc.MediaType != types.OCIManifestSchema1 || desc.ArtifactType != "" {
			t.Errorf("manifest %d media type %s artifact type %q, want %s and none", i, desc.MediaType, desc.ArtifactType, types.OCIManifestSchema1)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkConfig(t, img, b.Platform)
		want, err := os.ReadFile(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		checkLayer(t, img, want)
	}
}

// checkConfig checks that img runs the operator as the non-root user, for
// p, with the labels and timestamps of testMeta.
func checkConfig(t *testing.T, img v1.Image, p v1.Platform) {
	t.Helper()
	if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
		t.Errorf("%s: media type %s, want %s", p.Architecture, mt, types.OCIManifestSchema1)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != p.OS || cf.Architecture != p.Architecture {
		t.Errorf("config for %s/%s, want %s/%s", cf.OS, cf.Architecture, p.OS, p.Architecture)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("%s: user %q, want 65532:65532", p.Architecture, cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/netintent"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("%s: entrypoint %q cmd %q, want [/netintent] and none", p.Architecture, cf.Config.Entrypoint, cf.Config.Cmd)
	}
	for k, v := range map[string]string{labelSource: testMeta.Source, labelRevision: testMeta.Revision, labelVersion: testMeta.Version} {
		if cf.Config.Labels[k] != v {
			t.Errorf("%s: label %s=%q, want %q", p.Architecture, k, cf.Config.Labels[k], v)
		}
	}
	if !cf.Created.Equal(testMeta.Created) {
		t.Errorf("%s: created %s, want %s", p.Architecture, cf.Created, testMeta.Created)
	}
	if len(cf.History) != 1 || !cf.History[0].Created.Equal(testMeta.Created) {
		t.Errorf("%s: history %+v, want one entry created %s", p.Architecture, cf.History, testMeta.Created)
	}
	if len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("%s: %d diff IDs, want 1", p.Architecture, len(cf.RootFS.DiffIDs))
	}
}

// checkLayer checks that img has one gzipped OCI layer holding only
// netintent, root's, mode 0755, timestamped testMeta.Created, with the
// contents want.
func checkLayer(t *testing.T, img v1.Image, want []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if hdr.Name != "netintent" {
			continue
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o755 || hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(testMeta.Created) {
			t.Errorf("netintent: type %c mode %o owner %d:%d time %s, want a regular file, 0755, 0:0, %s",
				hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime, testMeta.Created)
		}
		got, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("netintent in the layer is %q, want %q", got, want)
		}
	}
	if !slices.Equal(names, []string{"netintent"}) {
		t.Errorf("layer holds %q, want only netintent", names)
	}
}

// TestReproducible builds the same binaries twice, into two layouts and
// two tar files, and wants the same bytes; a change to the binary or the
// source date must change the digest.
func TestReproducible(t *testing.T) {
	bins := fakeBinaries(t)
	var digests []v1.Hash
	var tars [][]byte
	for range 2 {
		out := t.TempDir()
		idx, err := buildIndex(bins, testMeta)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeLayout(filepath.Join(out, "oci"), idx, "latest"); err != nil {
			t.Fatal(err)
		}
		if err := writeTar(filepath.Join(out, "netintent.tar"), filepath.Join(out, "oci"), testMeta.Created); err != nil {
			t.Fatal(err)
		}
		read, err := readIndex(filepath.Join(out, "oci"))
		if err != nil {
			t.Fatal(err)
		}
		d, err := read.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if built, _ := idx.Digest(); built != d {
			t.Errorf("the layout holds index %s, built %s", d, built)
		}
		data, err := os.ReadFile(filepath.Join(out, "netintent.tar"))
		if err != nil {
			t.Fatal(err)
		}
		digests, tars = append(digests, d), append(tars, data)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds gave %s and %s", digests[0], digests[1])
	}
	if !bytes.Equal(tars[0], tars[1]) {
		t.Error("two builds gave different tar files")
	}

	later := testMeta
	later.Created = later.Created.Add(time.Second)
	idx, err := buildIndex(bins, later)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d == digests[0] {
		t.Errorf("another source date gave the same digest %s", d)
	}
	if err := os.WriteFile(bins[1].Path, []byte("another operator"), 0o755); err != nil {
		t.Fatal(err)
	}
	if idx, err = buildIndex(bins, testMeta); err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d == digests[0] {
		t.Errorf("another arm64 binary gave the same digest %s", d)
	}
}

// TestPush pushes a layout to a registry on loopback and pulls it back.
func TestPush(t *testing.T) {
	// No credentials of the user's: the registry takes anonymous pushes.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)

	bins := fakeBinaries(t)
	idx, err := buildIndex(bins, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	if err := writeLayout(dir, idx, "latest"); err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(srv.URL, "http://") + "/netintent:v0.0.0-test"
	if err := pushIndex(t.Context(), dir, ref); err != nil {
		t.Fatal(err)
	}

	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Index(r, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pulling the index back: %v", err)
	}
	want, _ := idx.Digest()
	if got, _ := pulled.Digest(); got != want {
		t.Errorf("the registry holds index %s, pushed %s", got, want)
	}
	for _, b := range bins {
		img, err := remote.Image(r, remote.WithContext(t.Context()), remote.WithPlatform(b.Platform))
		if err != nil {
			t.Fatalf("pulling the %s image: %v", b.Platform.Architecture, err)
		}
		checkConfig(t, img, b.Platform)
		data, err := os.ReadFile(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		checkLayer(t, img, data)
	}

	if err := pushIndex(t.Context(), filepath.Join(t.TempDir(), "missing"), ref); err == nil {
		t.Error("pushing from a folder with no layout did not fail")
	}
}

func TestParsePlatforms(t *testing.T) {
	got, err := parsePlatforms("linux/amd64, linux/arm64")
	if err != nil {
		t.Fatal(err)
	}
	want := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	if len(got) != len(want) || !got[0].Equals(want[0]) || !got[1].Equals(want[1]) {
		t.Errorf("parsePlatforms = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "linux", "linux/", "/amd64", "linux/arm/v7"} {
		if _, err := parsePlatforms(bad); err == nil {
			t.Errorf("parsePlatforms(%q) did not fail", bad)
		}
	}
}
