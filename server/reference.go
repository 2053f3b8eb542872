package server

import (
	"fmt"
	"strings"
)

// Docker reference normalisation, written after the grammar of
// github.com/distribution/reference (which containerd uses through
// ParseNormalizedNamed and ParseDockerRef) so that the fake names images
// exactly as containerd stores them, without taking the dependency:
//
//	reference := name [ ":" tag ] [ "@" digest ]
//	name      := [ domain "/" ] path-component [ "/" path-component ]*
//	domain    := host [ ":" port ]   (host: DNS name or [IPv6])
//	path-component := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
//	tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//	digest    := algorithm ":" hex
const (
	defaultDomain       = "docker.io"
	legacyDefaultDomain = "index.docker.io"
	officialRepoPrefix  = "library/"
	localhostDomain     = "localhost"
	defaultTag          = "latest"
	// nameTotalLengthMax bounds domain/path, as distribution's
	// NameTotalLengthMax.
	nameTotalLengthMax = 255
	tagLengthMax       = 128
)

// reference is a normalised docker image reference: Domain and Path are
// always set, and at least one of Tag and Digest.
type reference struct {
	// Domain is the registry, e.g. "docker.io" or "localhost:5000".
	Domain string
	// Path is the repository inside the registry, e.g. "library/busybox".
	Path string
	// Tag is e.g. "latest"; "" when the reference has only a digest.
	Tag string
	// Digest is e.g. "sha256:<64 hex>", or "".
	Digest string
}

// parseReference normalises s as containerd's CRI plugin does: a missing
// domain becomes docker.io, a single-component docker.io path gets
// "library/", and a reference with neither tag nor digest gets ":latest".
// A reference with both a tag and a digest keeps both; DockerRef drops the
// tag as containerd does when it names the image. Errors are InvalidArgument
// and name s.
func parseReference(s string) (reference, error) {
	fail := func(format string, args ...any) (reference, error) {
		return reference{}, errInvalid("invalid image reference %q: %s", s, fmt.Sprintf(format, args...))
	}
	if s == "" {
		return fail("empty reference")
	}
	// A bare image id would otherwise parse as docker.io/library/<hex>;
	// distribution refuses it so that ids and names cannot be confused.
	if isHex(s, 64) {
		return fail("cannot specify 64-byte hexadecimal strings as a repository name")
	}
	var ref reference
	rest := s
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		rest, ref.Digest = rest[:i], rest[i+1:]
		if msg := digestError(ref.Digest); msg != "" {
			return fail("%s", msg)
		}
	}
	// A ':' after the last '/' starts the tag; one before it is a port.
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		rest, ref.Tag = rest[:i], rest[i+1:]
		if msg := tagError(ref.Tag); msg != "" {
			return fail("%s", msg)
		}
	}
	if rest == "" {
		return fail("repository name must have at least one component")
	}
	ref.Domain, ref.Path = splitDockerDomain(rest)
	if !validDomain(ref.Domain) {
		return fail("invalid registry domain %q", ref.Domain)
	}
	if strings.ToLower(ref.Path) != ref.Path {
		return fail("repository name %q must be lowercase", ref.Path)
	}
	for _, comp := range strings.Split(ref.Path, "/") {
		if !validPathComponent(comp) {
			return fail("invalid repository name component %q", comp)
		}
	}
	if n := len(ref.Name()); n > nameTotalLengthMax {
		return fail("repository name must not be more than %d characters (it has %d)", nameTotalLengthMax, n)
	}
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = defaultTag
	}
	return ref, nil
}

// splitDockerDomain splits a name into domain and path the way
// distribution does: the first component is a domain only if it looks like
// one (has '.' or ':', is "localhost", or has upper case, which a path may
// not), so "foo/bar" is docker.io/foo/bar.
func splitDockerDomain(name string) (domain, path string) {
	i := strings.IndexByte(name, '/')
	if i == -1 || (!strings.ContainsAny(name[:i], ".:") && name[:i] != localhostDomain && strings.ToLower(name[:i]) == name[:i]) {
		domain, path = defaultDomain, name
	} else {
		domain, path = name[:i], name[i+1:]
	}
	if domain == legacyDefaultDomain {
		domain = defaultDomain
	}
	if domain == defaultDomain && !strings.Contains(path, "/") {
		path = officialRepoPrefix + path
	}
	return domain, path
}

// Name is the repository name, domain/path.
func (r reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full canonical form: name, then ":tag" and "@digest" when
// set.
func (r reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// DockerRef is the name containerd stores the image under
// (distribution's ParseDockerRef): a reference with both a tag and a
// digest is known by its digest alone, since the digest is what was pulled.
func (r reference) DockerRef() string {
	return r.dockerRef().String()
}

// dockerRef is DockerRef as a reference.
func (r reference) dockerRef() reference {
	if r.Digest != "" {
		r.Tag = ""
	}
	return r
}

// Familiar is the short form people type, as crictl and docker print it:
// "docker.io/library/busybox:latest" is "busybox:latest".
func (r reference) Familiar() string {
	name := r.Name()
	if r.Domain == defaultDomain {
		name = r.Path
		if rest, ok := strings.CutPrefix(name, officialRepoPrefix); ok && !strings.Contains(rest, "/") {
			name = rest
		}
	}
	s := name
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// repoName is the last path component, "busybox" for
// docker.io/library/busybox.
func (r reference) repoName() string {
	return r.Path[strings.LastIndexByte(r.Path, '/')+1:]
}

// validDomain accepts host[:port] with host a DNS name (components of
// letters, digits and inner '-', separated by '.') or a bracketed IPv6
// address.
func validDomain(d string) bool {
	host, port := d, ""
	if strings.HasPrefix(d, "[") {
		end := strings.IndexByte(d, ']')
		if end < 2 || !isIPv6Chars(d[1:end]) {
			return false
		}
		host = d[:end+1]
		if rest := d[end+1:]; rest != "" {
			p, ok := strings.CutPrefix(rest, ":")
			if !ok {
				return false
			}
			port = p
			if !isDigits(port) {
				return false
			}
		}
		return true
	}
	if i := strings.LastIndexByte(d, ':'); i >= 0 {
		host, port = d[:i], d[i+1:]
		if !isDigits(port) {
			return false
		}
	}
	if host == "" {
		return false
	}
	for _, comp := range strings.Split(host, ".") {
		if comp == "" || !isAlnum(comp[0]) || !isAlnum(comp[len(comp)-1]) {
			return false
		}
		for i := 0; i < len(comp); i++ {
			if !isAlnum(comp[i]) && comp[i] != '-' {
				return false
			}
		}
	}
	return true
}

// validPathComponent matches [a-z0-9]+ ( ([._]|__|-+) [a-z0-9]+ )*.
func validPathComponent(c string) bool {
	i, n := 0, len(c)
	lowerAlnumRun := func() bool {
		start := i
		for i < n && (c[i] >= 'a' && c[i] <= 'z' || c[i] >= '0' && c[i] <= '9') {
			i++
		}
		return i > start
	}
	if !lowerAlnumRun() {
		return false
	}
	for i < n {
		switch {
		case strings.HasPrefix(c[i:], "__"):
			i += 2
		case c[i] == '.' || c[i] == '_':
			i++
		case c[i] == '-':
			for i < n && c[i] == '-' {
				i++
			}
		default:
			return false
		}
		if !lowerAlnumRun() {
			return false
		}
	}
	return true
}

// tagError returns why tag is not [\w][\w.-]{0,127}, or "".
func tagError(tag string) string {
	switch {
	case tag == "":
		return "empty tag"
	case len(tag) > tagLengthMax:
		return fmt.Sprintf("tag %q is longer than %d characters", tag, tagLengthMax)
	case !isWord(tag[0]):
		return fmt.Sprintf("tag %q must start with a letter, digit or '_'", tag)
	}
	for i := 1; i < len(tag); i++ {
		if !isWord(tag[i]) && tag[i] != '.' && tag[i] != '-' {
			return fmt.Sprintf("tag %q has an invalid character %q", tag, tag[i])
		}
	}
	return ""
}

// digestError returns why d is not a digest containerd accepts, or "": the
// algorithms of go-digest, with their exact lowercase hex lengths.
func digestError(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" || hex == "" {
		return fmt.Sprintf("invalid digest %q: want algorithm:hex", d)
	}
	var n int
	switch alg {
	case "sha256":
		n = 64
	case "sha384":
		n = 96
	case "sha512":
		n = 128
	default:
		return fmt.Sprintf("invalid digest %q: unsupported digest algorithm %q", d, alg)
	}
	if !isHex(hex, n) {
		return fmt.Sprintf("invalid digest %q: %s needs %d lowercase hex characters", d, alg, n)
	}
	return ""
}

// isImageID reports whether s is a full image id, "sha256:<64 hex>". Image
// ids name bbolt records (as in containerd) but are not references.
func isImageID(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	return ok && isHex(hex, 64)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isIPv6Chars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != ':' && (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isWord(c byte) bool { return isAlnum(c) || c == '_' }
