package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// conformanceVersion pins the OCI distribution-spec conformance suite (the
// Go module proxy's pseudo-version of its main branch, the suite the
// README describes: go build, OCI_REGISTRY/OCI_REPO1/...).
const conformanceVersion = "v0.0.0-20260831232431-97274622c111"

// conformanceEnv turns every API and data switch of the suite on.
func conformanceEnv(h *harness, resultsDir string) []string {
	env := []string{
		"OCI_REGISTRY=" + h.host, "OCI_TLS=enabled", "OCI_VERSION=1.1",
		"OCI_REPO1=conformance/repo1", "OCI_REPO2=conformance/repo2",
		"OCI_USERNAME=" + ci, "OCI_PASSWORD=" + envPasswords(ci),
		"OCI_RESULTS_DIR=" + resultsDir, "OCI_LOG=warn", "OCI_CACHE_AUTH=true",
		// The legacy variables the brief names, for the suite's mapping.
		"OCI_ROOT_URL=" + h.base, "OCI_NAMESPACE=conformance/repo1", "OCI_CROSSMOUNT_NAMESPACE=conformance/repo2",
		"OCI_TEST_PULL=1", "OCI_TEST_PUSH=1", "OCI_TEST_CONTENT_DISCOVERY=1", "OCI_TEST_CONTENT_MANAGEMENT=1",
	}
	for _, k := range []string{
		"PING", "PULL", "PUSH", "BLOBS_ATOMIC", "BLOBS_DELETE", "BLOBS_DIGEST_HEADER", "BLOBS_MOUNT_ANONYMOUS",
		"BLOBS_UPLOAD_CANCEL", "MANIFESTS_ATOMIC", "MANIFESTS_DELETE", "MANIFESTS_DIGEST_HEADER", "MANIFESTS_TAG_PARAM",
		"TAGS_ATOMIC", "TAGS_DELETE", "TAGS_LIST", "REFERRER",
	} {
		env = append(env, "OCI_API_"+k+"=true")
	}
	for _, k := range []string{
		"IMAGE", "INDEX", "INDEX_LIST", "SPARSE", "ARTIFACT", "SUBJECT", "SUBJECT_MISSING", "ARTIFACT_LIST",
		"SUBJECT_LIST", "DATA_FIELD", "NONDISTRIBUTABLE", "CUSTOM_FIELDS", "NO_LAYERS", "EMPTY_BLOB", "SHA512",
	} {
		env = append(env, "OCI_DATA_"+k+"=true")
	}
	return env
}

func envPasswords(user string) string { return env.passwords[user] }

var countRE = regexp.MustCompile(`(?m)^\s+(Pass|Fail|Error|Skip|Disabled)\.*:\s+(\d+)$`)

// TestConformance runs the OCI distribution-spec conformance suite with
// every switch on against MCR with token auth through MCIAS (the ci
// account, allowed conformance/* by a rule). Sparse manifests are part of
// the run, so this MCR allows them; TestSparseRefused checks the default.
func TestConformance(t *testing.T) {
	bin := goTool(t, "conformance", "github.com/opencontainers/distribution-spec/conformance", conformanceVersion)
	h := start(t, options{sparse: true})
	runConformance(t, bin, h)
}

func runConformance(t *testing.T, bin string, h *harness) map[string]int {
	t.Helper()
	results := t.TempDir()
	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), conformanceEnv(h, results)...)
	cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+env.ca.CertPath())
	out, err := cmd.CombinedOutput()
	counts := map[string]int{}
	for _, m := range countRE.FindAllStringSubmatch(string(out), -1) {
		counts[m[1]], _ = strconv.Atoi(m[2])
	}
	t.Logf("conformance: pass %d, fail %d, error %d, skip %d, disabled %d", counts["Pass"], counts["Fail"], counts["Error"], counts["Skip"], counts["Disabled"])
	if err != nil || counts["Fail"] != 0 || counts["Error"] != 0 || counts["Skip"] != 0 || counts["Disabled"] != 0 || counts["Pass"] == 0 {
		report, _ := os.ReadFile(filepath.Join(results, "results.yaml"))
		t.Errorf("conformance suite: %v\n%s\nresults.yaml:\n%s", err, tail(string(out), 20000), report)
	}
	if !strings.Contains(string(out), "OCI Conformance Result: Pass") {
		t.Errorf("the suite did not report a pass")
	}
	return counts
}
