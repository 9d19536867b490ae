// Package builder finds, connects to, and if need be starts the buildkitd that
// ov builds with.
//
// Resolution order: Options.Addr (--builder), then BUILDKIT_HOST, then a
// daemon answering at the default socket, then ov's own managed buildkitd
// (started on demand, reused by later builds; see Start).
package builder

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"

	// Registered for their side effect: each adds a connhelper URL scheme.
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer"
	_ "github.com/moby/buildkit/client/connhelper/kubepod"
	_ "github.com/moby/buildkit/client/connhelper/nerdctlcontainer"
	_ "github.com/moby/buildkit/client/connhelper/podmancontainer"
	_ "github.com/moby/buildkit/client/connhelper/ssh"
)

// Options says which buildkitd to use and how to reach it.
type Options struct {
	// Addr is the buildkitd address (--builder); empty means BUILDKIT_HOST,
	// then the default socket, then the managed builder.
	Addr string

	// TLS material for tcp:// builders (file paths). Any of them set turns
	// TLS on.
	TLSCACert, TLSCert, TLSKey, TLSServerName string

	// ConfigFile is the buildkitd.toml for the managed builder; empty means
	// <ProjectDir>/hack/buildkitd.toml, then the user's
	// <UserConfigDir>/ov/buildkitd.toml, then buildkitd's defaults.
	ConfigFile string

	// ProjectDir is the ov project root: where hack/buildkitd.toml and
	// bin/buildkitd (built by `go tool task setup`) are looked up. Empty
	// skips both.
	ProjectDir string
}

// DefaultAddr is the system buildkitd socket, used when it answers. A
// variable so tests can point it elsewhere.
var DefaultAddr = "unix:///run/buildkit/buildkitd.sock"

// Schemes lists the builder address schemes ov understands.
var Schemes = []string{"unix", "tcp", "docker-container", "podman-container", "nerdctl-container", "kube-pod", "ssh"}

// Bounds on reaching a builder, so a dead or black-holed address fails
// instead of hanging a build.
var (
	dialTimeout  = 5 * time.Second
	probeTimeout = 20 * time.Second
)

// EnvHost is the environment variable naming the builder, as for buildctl.
const EnvHost = "BUILDKIT_HOST"

// Connect returns a client for the builder the options resolve to, verified
// to answer. Without an address or BUILDKIT_HOST it uses the daemon at
// DefaultAddr if one answers there, and otherwise starts (or reuses) the
// managed builder.
func Connect(ctx context.Context, o Options) (*client.Client, error) {
	c, _, err := resolve(ctx, o, true)
	return c, err
}

// ConnectAddr is Connect that also returns the address it resolved to.
func ConnectAddr(ctx context.Context, o Options) (*client.Client, string, error) {
	return resolve(ctx, o, true)
}

// Lookup resolves the builder like Connect but never starts one: when the
// choice falls to a managed builder that is not running it returns that
// builder's address and ErrNotRunning. addr is the address resolved to.
func Lookup(ctx context.Context, o Options) (c *client.Client, addr string, err error) {
	return resolve(ctx, o, false)
}

func resolve(ctx context.Context, o Options, start bool) (*client.Client, string, error) {
	addr := o.Addr
	if addr == "" {
		addr = os.Getenv(EnvHost)
	}
	if addr != "" {
		c, err := Dial(ctx, addr, o)
		return c, addr, explicitHint(err)
	}

	c, err := Dial(ctx, DefaultAddr, o)
	if err == nil {
		return c, DefaultAddr, nil
	}
	var ce *connError
	// A system daemon the user may not talk to is worth saying so rather
	// than quietly starting a second one (which would need root anyway).
	if errors.As(err, &ce) && ce.kind != unreachable {
		return nil, DefaultAddr, err
	}

	var st State
	if start {
		st, err = Start(ctx, o)
	} else if st, err = Status(ctx, o); err == nil && !st.Running {
		err = ErrNotRunning
	}
	if err != nil {
		return nil, st.Addr, err
	}
	c, err = Dial(ctx, st.Addr, Options{})
	return c, st.Addr, err
}

// Dial connects to the buildkitd at addr with the options' TLS settings and
// checks that it answers (ListWorkers, bounded by a timeout). Failures come
// back as one sentence naming the address and the likely fix.
func Dial(ctx context.Context, addr string, o Options) (*client.Client, error) {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("invalid builder address %q: want SCHEME://..., one of %s", addr, strings.Join(Schemes, ", "))
	}
	if !supported(u.Scheme) {
		return nil, fmt.Errorf("invalid builder address %q: unsupported scheme %q (want one of %s)", addr, u.Scheme, strings.Join(Schemes, ", "))
	}

	// Dial plain sockets ourselves first: the syscall error (missing socket,
	// refused, permission) says far more than gRPC's retry state does.
	if network, target, ok := socketOf(u); ok {
		d := net.Dialer{Timeout: dialTimeout}
		conn, err := d.DialContext(ctx, network, target)
		if err != nil {
			return nil, classify(addr, false, err)
		}
		conn.Close()
	}

	var opts []client.ClientOpt
	useTLS := o.TLSCACert != "" || o.TLSCert != "" || o.TLSKey != "" || o.TLSServerName != ""
	if useTLS {
		if (o.TLSCert == "") != (o.TLSKey == "") {
			return nil, fmt.Errorf("builder %s: --tlscert and --tlskey go together (got only one)", addr)
		}
		if o.TLSCACert != "" {
			opts = append(opts, client.WithServerConfig(o.TLSServerName, o.TLSCACert))
		} else {
			opts = append(opts, client.WithServerConfigSystem(o.TLSServerName))
		}
		if o.TLSCert != "" {
			opts = append(opts, client.WithCredentials(o.TLSCert, o.TLSKey))
		}
	}

	c, err := client.New(ctx, addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("builder %s: %w", addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	if _, err := c.ListWorkers(pctx); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if pctx.Err() != nil {
			return nil, &connError{kind: unreachable, addr: addr, err: fmt.Errorf("no answer within %s", probeTimeout)}
		}
		return nil, classify(addr, useTLS, err)
	}
	return c, nil
}

func supported(scheme string) bool {
	for _, s := range Schemes {
		if s == scheme {
			return true
		}
	}
	return false
}

// socketOf returns what to net.Dial for unix:// and tcp:// addresses.
func socketOf(u *url.URL) (network, target string, ok bool) {
	switch u.Scheme {
	case "unix":
		// unix:///abs/path has the path in Path; unix://rel/path in Host+Path.
		return "unix", u.Host + u.Path, true
	case "tcp":
		return "tcp", u.Host, true
	}
	return "", "", false
}

type errKind int

const (
	unreachable errKind = iota
	permission
	tlsFailure
)

// connError is a builder connection failure, already phrased for the user.
type connError struct {
	kind errKind
	addr string
	err  error
	hint string // replaces the kind's usual advice
}

func (e *connError) Error() string {
	switch e.kind {
	case permission:
		path := strings.TrimPrefix(e.addr, "unix://")
		return fmt.Sprintf("permission denied on buildkitd socket %s: run as root or add yourself to the group owning %s", path, path)
	case tlsFailure:
		return fmt.Sprintf("TLS handshake with buildkitd at %s failed: %v (%s)", e.addr, e.err, or(e.hint, "check --tlscacert, --tlscert and --tlskey"))
	}
	return fmt.Sprintf("cannot reach buildkitd at %s: %v (%s)", e.addr, e.err, or(e.hint, "is it running? start one with `ov builder start`"))
}

func (e *connError) Unwrap() error { return e.err }

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// explicitHint rewrites the unreachable hint for an address the user gave:
// `ov builder start` would start a different daemon than the one named.
func explicitHint(err error) error {
	if err == nil {
		return nil
	}
	var ce *connError
	if errors.As(err, &ce) && ce.kind == unreachable && ce.hint == "" {
		ce.hint = "is it running there? without --builder and " + EnvHost + ", ov starts its own"
	}
	return err
}

// classify turns a dial or probe error into a connError. useTLS says whether
// the client spoke TLS.
func classify(addr string, useTLS bool, err error) error {
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return &connError{kind: permission, addr: addr, err: err}
	}
	// gRPC flattens the cause into its status message.
	msg := err.Error()
	cause := grpcCause(err)
	dropped := strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF")
	switch {
	case strings.Contains(msg, "permission denied"):
		return &connError{kind: permission, addr: addr, err: err}
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:") || strings.Contains(msg, "authentication handshake failed"):
		return &connError{kind: tlsFailure, addr: addr, err: cause}
	case useTLS && dropped:
		// With TLS 1.3 a rejected client certificate shows up as the server
		// hanging up after the handshake.
		return &connError{kind: tlsFailure, addr: addr, err: fmt.Errorf("connection closed by the builder: %w", cause),
			hint: "does it accept this client certificate? check --tlscert and --tlskey, and --tlscacert"}
	case !useTLS && dropped && strings.HasPrefix(addr, "tcp://"):
		return &connError{kind: unreachable, addr: addr, err: cause,
			hint: "does it require TLS? pass --tlscacert, --tlscert and --tlskey"}
	}
	return &connError{kind: unreachable, addr: addr, err: cause}
}

// grpcCause trims the client's "failed to list workers: Unavailable:
// connection error: desc = transport: ..." wrapping down to the cause.
func grpcCause(err error) error {
	msg := err.Error()
	if i := strings.LastIndex(msg, "desc = "); i >= 0 {
		msg = strings.Trim(msg[i+len("desc = "):], `"`)
	}
	msg = strings.TrimPrefix(msg, "failed to list workers: ")
	for _, code := range []string{"Unavailable: ", "Unknown: ", "Internal: "} {
		msg = strings.TrimPrefix(msg, code)
	}
	msg = strings.TrimPrefix(msg, "transport: ")
	msg = strings.TrimPrefix(msg, "authentication handshake failed: ")
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

// OnThisHost reports whether the builder at addr runs on this machine: a
// unix socket, or TCP to a loopback address. What it exports then reaches
// ov without crossing a network (see export.Encoding).
func OnThisHost(addr string) bool {
	u, err := url.Parse(addr)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "unix":
		return true
	case "tcp":
		host := u.Hostname()
		if host == "localhost" {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	return false
}
