package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/netintent/netintent/api/v1alpha1"
	"github.com/netintent/netintent/internal/testenv"
)

// imagePlatforms are the platforms make image builds.
var imagePlatforms = []string{"linux/amd64", "linux/arm64"}

// imageUser is the user the image runs as.
const imageUser = "65532:65532"

// TestImage checks the image make image built in bin/image, builds it once
// more and wants the same digest, then runs it under runc as the
// Deployment's security context says: the operator in it reconciles an
// intent, answers DNS for it, and exits 0 on SIGTERM.
func TestImage(t *testing.T) {
	p := findPaths(t)
	imageDir := filepath.Join(p.root, "bin", "image")
	idx := readImageIndex(t, filepath.Join(imageDir, "oci"))
	revision := strings.TrimSpace(gitOutput(t, p.root, "rev-parse", "HEAD"))

	images := map[string]v1.Image{}
	step(t, "one image a platform, each the operator built static, run as 65532", func(t *testing.T) {
		images = checkImageIndex(t, idx, imageDir, revision)
	})
	step(t, "the same commit builds the same digest", func(t *testing.T) {
		checkRebuild(t, p, idx)
	})

	host := "linux/" + runtime.GOARCH
	img, ok := images[host]
	if !ok {
		t.Fatalf("the image has no %s platform to run here", host)
	}
	if reason := runcMissing(); reason != "" {
		t.Skipf("not running the image: %s", reason)
	}
	step(t, "the image runs under runc as the Deployment says", func(t *testing.T) {
		runImage(t, p, img)
	})
}

// readImageIndex is the image index in the OCI layout at dir.
func readImageIndex(t *testing.T, dir string) v1.ImageIndex {
	t.Helper()
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatalf("no image layout in %s: run `make image` (or `make test-e2e`, which builds it): %v", dir, err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		t.Fatalf("%s/index.json: want one image index, found %+v", dir, m.Manifests)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func gitOutput(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// checkImageIndex checks every platform's image in idx and returns them by
// platform: its config, and that its one layer holds only /netintent, the
// binary make image built for that platform, static and without the
// builder's paths.
func checkImageIndex(t *testing.T, idx v1.ImageIndex, imageDir, revision string) map[string]v1.Image {
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]v1.Image{}
	var platforms []string
	for _, desc := range m.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %s names no platform", desc.Digest)
		}
		plat := desc.Platform.OS + "/" + desc.Platform.Architecture
		platforms = append(platforms, plat)
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[plat] = img

		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got := cf.OS + "/" + cf.Architecture; got != plat {
			t.Errorf("%s: config says %s", plat, got)
		}
		if cf.Config.User != imageUser {
			t.Errorf("%s: user %q, want %s", plat, cf.Config.User, imageUser)
		}
		if !slices.Equal(cf.Config.Entrypoint, []string{"/netintent"}) {
			t.Errorf("%s: entrypoint %q, want [/netintent]", plat, cf.Config.Entrypoint)
		}
		labels := cf.Config.Labels
		if labels["org.opencontainers.image.revision"] != revision {
			t.Errorf("%s: revision label %q, want the commit %s", plat, labels["org.opencontainers.image.revision"], revision)
		}
		for _, k := range []string{"org.opencontainers.image.source", "org.opencontainers.image.version"} {
			if labels[k] == "" {
				t.Errorf("%s: no %s label", plat, k)
			}
		}

		files := imageFiles(t, img)
		if names := slices.Sorted(maps.Keys(files)); !slices.Equal(names, []string{"netintent"}) {
			t.Errorf("%s: the image holds %q, want only netintent", plat, names)
		}
		bin := files["netintent"]
		built, err := os.ReadFile(filepath.Join(imageDir, desc.Platform.OS+"-"+desc.Platform.Architecture, "netintent"))
		if err != nil {
			t.Fatal(err)
		}
		if sha(bin) != sha(built) {
			t.Errorf("%s: /netintent is %s, the binary built for it is %s", plat, sha(bin), sha(built))
		}
		checkBuildInfo(t, plat, bin, desc.Platform.Architecture)
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Errorf("%s: layers %d (%v), want 1", plat, len(layers), err)
			continue
		}
		size, err := layers[0].Size()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: image %s, layer %.1f MiB compressed, binary %.1f MiB", plat, desc.Digest, float64(size)/(1<<20), float64(len(bin))/(1<<20))
	}
	if !slices.Equal(platforms, imagePlatforms) {
		t.Errorf("the index holds %q, want %q", platforms, imagePlatforms)
	}
	return images
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// imageFiles reads the regular files of img's flattened file system, by
// path without the leading slash.
func imageFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatalf("reading the image's files: %v", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			t.Errorf("the image holds %s of type %c: want regular files only", hdr.Name, hdr.Typeflag)
			continue
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.Mode&0o022 != 0 {
			t.Errorf("%s: owner %d:%d mode %o, want root's and writable by root only", hdr.Name, hdr.Uid, hdr.Gid, hdr.Mode)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[path.Clean(strings.TrimPrefix(hdr.Name, "/"))] = data
	}
}

// checkBuildInfo checks what the Go toolchain recorded in the binary: the
// operator's module, for arch, with cgo off and no paths of the machine
// that built it; and that it is static and stripped.
func checkBuildInfo(t *testing.T, plat string, bin []byte, arch string) {
	t.Helper()
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Errorf("%s: /netintent has no Go build information: %v", plat, err)
		return
	}
	if info.Path != "github.com/netintent/netintent" {
		t.Errorf("%s: /netintent is %s, want the operator", plat, info.Path)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	for k, want := range map[string]string{"GOOS": "linux", "GOARCH": arch, "CGO_ENABLED": "0", "-trimpath": "true"} {
		if settings[k] != want {
			t.Errorf("%s: /netintent built with %s=%q, want %q", plat, k, settings[k], want)
		}
	}

	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Errorf("%s: /netintent is not ELF: %v", plat, err)
		return
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Errorf("%s: /netintent asks for a dynamic loader", plat)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: /netintent needs %q", plat, libs)
	}
	if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
		t.Errorf("%s: /netintent has a symbol table or DWARF; want -ldflags=\"-s -w\"", plat)
	}
}

// checkRebuild runs make image's build into a folder of its own and wants
// the digest of idx.
func checkRebuild(t *testing.T, p paths, idx v1.ImageIndex) {
	want, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./hack/image", "-out", out, "-platforms", strings.Join(imagePlatforms, ","))
	cmd.Dir = p.root
	began := time.Now()
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run ./hack/image: %v\n%s", err, output)
	}
	got, err := readImageIndex(t, filepath.Join(out, "oci")).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("a second build gave %s, bin/image holds %s (built from another commit? run make image)", got, want)
	}
	t.Logf("rebuilt in %s: %s", time.Since(began).Round(time.Millisecond), got)
}

// runcMissing says why runc cannot run a container on this machine, or ""
// when it can.
func runcMissing() string {
	if os.Geteuid() != 0 {
		return "runc needs root here (the suite runs as root in CI)"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "no runc (Debian's runc package; .ci/run installs it)"
	}
	return ""
}

// runImage unpacks img into a bundle and runs it with runc, as the
// Deployment's container security context says, in this machine's network
// namespace so that it reaches the local control plane on loopback.
func runImage(t *testing.T, p paths, img v1.Image) {
	const namespace = "netintent-image"
	ic := startIntentCluster(t, p, "netintent-image-e2e", namespace)
	u, err := ic.env.AddUser(envtest.User{Name: "netintent-image-operator", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}

	sc, limits := managerSecurity(t, p)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := parseUser(t, cf.Config.User)
	if sc.RunAsNonRoot != nil && *sc.RunAsNonRoot && uid == 0 {
		t.Fatalf("the image runs as %q, the Deployment wants a non-root user", cf.Config.User)
	}

	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	unpack(t, img, rootfs)
	// The kubeconfig, read-only in the container, readable by its user.
	secrets := filepath.Join(bundle, "kubeconfig")
	if err := os.Mkdir(secrets, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "kubeconfig"), kubeconfig, 0o644); err != nil {
		t.Fatal(err)
	}
	// The kubelet gives every container its /etc/resolv.conf and /etc/hosts;
	// the image has neither. The operator reads its default upstreams from
	// the former; this nameserver (TEST-NET-1) is never asked, as the test
	// asks only about names in the operator's own zone.
	etc := filepath.Join(bundle, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, content := range map[string]string{
		"resolv.conf": "search netintent-system.svc.cluster.local svc.cluster.local cluster.local\nnameserver 192.0.2.10\noptions ndots:5\n",
		"hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
	} {
		if err := os.WriteFile(filepath.Join(etc, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	state := t.TempDir()
	id := fmt.Sprintf("netintent-image-%d", os.Getpid())
	// Runs after the operator's cleanup has killed runc, if it had to: a
	// killed runc leaves its container behind.
	t.Cleanup(func() {
		_ = exec.Command("runc", "--root", state, "delete", "--force", id).Run()
	})
	op := startOperatorWith(t, p, func(args []string) *exec.Cmd {
		writeRuncConfig(t, bundle, cf, uid, gid, sc, limits, args, map[string]string{
			"/var/run/netintent": secrets,
			"/etc/resolv.conf":   filepath.Join(etc, "resolv.conf"),
			"/etc/hosts":         filepath.Join(etc, "hosts"),
		})
		return exec.Command("runc", "--root", state, "run", "--bundle", bundle, id)
	})
	checkContainerProcess(t, state, id, uid, gid)

	leaseName := waitForLeader(t, ic.admin)
	in := &v1alpha1.NetworkIntent{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web"},
		Spec: v1alpha1.NetworkIntentSpec{
			Exposure: v1alpha1.ExposureClusterIP,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Ports:    []v1alpha1.IntentPort{{Name: "http", Port: 80, TargetPort: ptr.To(intstr.FromInt32(8080))}},
		},
	}
	if err := ic.client.Create(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	var svc corev1.Service
	testenv.Await(t, "the intent's Service", 30*time.Second, func() error {
		return ic.client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: in.Name}, &svc)
	})
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		t.Fatalf("Service %s has cluster IP %q", svc.Name, svc.Spec.ClusterIP)
	}
	t.Logf("the operator in the container made Service %s/%s, cluster IP %s", namespace, svc.Name, svc.Spec.ClusterIP)
	name := in.Name + "." + namespace + ".svc.cluster.local"
	checkA(t, "udp", op.DNSAddr, name, svc.Spec.ClusterIP)
	checkA(t, "tcp", op.DNSAddr, name, svc.Spec.ClusterIP)
	t.Logf("the operator in the container answers A %s = %s on %s", name, svc.Spec.ClusterIP, op.DNSAddr)

	// Go's soft memory limit, from the container's (its cgroup's).
	if mem, ok := limits[corev1.ResourceMemory]; ok {
		want := fmt.Sprintf(`"GOMEMLIMIT":%d`, int64(float64(mem.Value())*0.9))
		if !strings.Contains(op.Log(), want) {
			t.Errorf("the operator did not log its Go memory limit as %s, 90%% of the container's %s", want, mem.String())
		}
	}

	stopOperator(t, ic.admin, op, leaseName)
	checkNoForbidden(t, op)
	t.Logf("operator log, last 5 lines:\n%s", op.Tail(5))
}

// managerSecurity is the manager container's security context and resource
// limits in config/manager.
func managerSecurity(t *testing.T, p paths) (*corev1.SecurityContext, corev1.ResourceList) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(p.configDir, "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		var d appsv1.Deployment
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("config/manager/manager.yaml: %v", err)
		}
		if d.Kind != "Deployment" {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "manager" {
				if c.SecurityContext == nil {
					t.Fatal("the manager container has no security context")
				}
				return c.SecurityContext, c.Resources.Limits
			}
		}
	}
	t.Fatal("config/manager/manager.yaml has no manager container")
	return nil, nil
}

// parseUser reads an image config's numeric uid:gid.
func parseUser(t *testing.T, s string) (uid, gid int) {
	t.Helper()
	u, g, ok := strings.Cut(s, ":")
	var err1, err2 error
	uid, err1 = strconv.Atoi(u)
	gid, err2 = strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("the image's user %q is not numeric uid:gid", s)
	}
	return uid, gid
}

// unpack writes img's files into rootfs, a folder everyone may enter.
func unpack(t *testing.T, img v1.Image, rootfs string) {
	t.Helper()
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("unpacking the image: %v", err)
		}
		target := filepath.Join(rootfs, filepath.FromSlash(path.Clean("/"+hdr.Name)))
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, hdr.FileInfo().Mode().Perm())
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, hdr.FileInfo().Mode().Perm()); err == nil {
				_, err = io.Copy(f, tr)
				err = errors.Join(err, f.Close())
			}
		default:
			err = fmt.Errorf("type %c not unpacked", hdr.Typeflag)
		}
		if err != nil {
			t.Fatalf("unpacking %s: %v", hdr.Name, err)
		}
	}
}

// writeRuncConfig writes the bundle's config.json from runc's default spec:
// the image's entrypoint with args, its user and environment, and the
// security context's read-only root, capabilities and privilege
// escalation; no network namespace of its own; binds (destination in the
// container: source here) mounted read-only.
func writeRuncConfig(t *testing.T, bundle string, cf *v1.ConfigFile, uid, gid int, sc *corev1.SecurityContext, limits corev1.ResourceList, args []string, binds map[string]string) {
	t.Helper()
	cfgPath := filepath.Join(bundle, "config.json")
	_ = os.Remove(cfgPath)
	if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v: %s", err, out)
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	process := spec["process"].(map[string]any)
	process["terminal"] = false
	process["args"] = append(append(slices.Clone(cf.Config.Entrypoint), cf.Config.Cmd...), args...)
	process["cwd"] = cmp.Or(cf.Config.WorkingDir, "/")
	process["user"] = map[string]any{"uid": uid, "gid": gid}
	env := append(slices.Clone(cf.Config.Env), "KUBECONFIG=/var/run/netintent/kubeconfig")
	if mem, ok := limits[corev1.ResourceMemory]; ok {
		linux := spec["linux"].(map[string]any)
		linux["resources"] = map[string]any{"memory": map[string]any{"limit": mem.Value()}}
	}
	process["env"] = env

	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Fatalf("the manager's capabilities are %+v; this test knows drop ALL, add none", sc.Capabilities)
	}
	process["capabilities"] = map[string]any{}
	process["noNewPrivileges"] = sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation
	spec["root"] = map[string]any{"path": "rootfs", "readonly": sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem}

	linux := spec["linux"].(map[string]any)
	var namespaces []any
	for _, ns := range linux["namespaces"].([]any) {
		if ns.(map[string]any)["type"] != "network" {
			namespaces = append(namespaces, ns)
		}
	}
	linux["namespaces"] = namespaces
	mounts := spec["mounts"].([]any)
	for _, dest := range slices.Sorted(maps.Keys(binds)) {
		mounts = append(mounts, map[string]any{
			"destination": dest,
			"type":        "bind",
			"source":      binds[dest],
			"options":     []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
		})
	}
	spec["mounts"] = mounts
	out, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkContainerProcess checks from /proc what the operator in container
// id runs as: uid and gid, no capabilities, no new privileges, and a
// read-only root file system.
func checkContainerProcess(t *testing.T, state, id string, uid, gid int) {
	t.Helper()
	out, err := exec.Command("runc", "--root", state, "state", id).Output()
	if err != nil {
		t.Fatalf("runc state %s: %v", id, err)
	}
	var st struct {
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	if st.Status != "running" || st.Pid == 0 {
		t.Fatalf("container %s: %s", id, out)
	}
	status := procStatus(t, st.Pid)
	want := map[string]string{
		"Uid":        fmt.Sprintf("%d\t%d\t%d\t%d", uid, uid, uid, uid),
		"Gid":        fmt.Sprintf("%d\t%d\t%d\t%d", gid, gid, gid, gid),
		"CapInh":     "0000000000000000",
		"CapPrm":     "0000000000000000",
		"CapEff":     "0000000000000000",
		"CapBnd":     "0000000000000000",
		"CapAmb":     "0000000000000000",
		"NoNewPrivs": "1",
	}
	for k, v := range want {
		if status[k] != v {
			t.Errorf("the operator's %s is %q, want %q", k, status[k], v)
		}
	}
	root := rootMountOptions(t, st.Pid)
	if !slices.Contains(root, "ro") {
		t.Errorf("the operator's root file system is mounted %q, want ro", root)
	}
	t.Logf("the operator runs as pid %d: Uid %s, CapEff %s, NoNewPrivs %s, / mounted %s",
		st.Pid, status["Uid"], status["CapEff"], status["NoNewPrivs"], strings.Join(root, ","))
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// rootMountOptions are the mount options of / as process pid sees it.
func rootMountOptions(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	var opts []string
	for line := range strings.Lines(string(data)) {
		// id parent major:minor root mountpoint options ...
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			opts = strings.Split(f[5], ",") // the last mount on / wins
		}
	}
	return opts
}
