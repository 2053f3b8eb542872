package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/fakecontainerd/fakecontainerd/configs"
	"github.com/fakecontainerd/fakecontainerd/faults"
)

// AdminAddress is the admin API's socket: admin_address, or the CRI
// address plus ".admin".
func AdminAddress(cfg *configs.Config) string {
	if a := cfg.Plugins.Fake.AdminAddress; a != "" {
		return a
	}
	return cfg.GRPC.Address + ".admin"
}

// The admin API's request and response bodies.
type (
	// FaultRequest arms a fault. With Strict, a target that matches no
	// container or pod that exists now is refused instead of warned about.
	FaultRequest struct {
		Point  string `json:"point"`
		Target string `json:"target"`
		Spec   string `json:"spec"`
		Strict bool   `json:"strict,omitempty"`
	}
	// FaultResponse is the armed fault, and a warning when its target
	// matches nothing that exists now (it may match a pod yet to come).
	FaultResponse struct {
		faults.Info
		Warning string `json:"warning,omitempty"`
	}
	// FixRequest switches a fix.
	FixRequest struct {
		Fix string `json:"fix"`
		On  bool   `json:"on"`
	}
	// ReleaseResponse says how many blocked calls were let go.
	ReleaseResponse struct {
		Released int `json:"released"`
	}
	// ErrorResponse carries a failed request's reason.
	ErrorResponse struct {
		Error string `json:"error"`
	}
)

// adminHandler serves the admin API: faults and fixes at run time. It is
// plain JSON over HTTP so curl --unix-socket works as well as the CLI.
func (c *criService) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.faults.List())
	})
	mux.HandleFunc("GET /v1/faults/points", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, faults.Points())
	})
	mux.HandleFunc("GET /v1/faults/counts", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.faults.Counts())
	})
	mux.HandleFunc("POST /v1/faults", func(w http.ResponseWriter, r *http.Request) {
		var req FaultRequest
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		sel, err := faults.ParseSelector(req.Target)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		warning := c.unmatchedTarget(sel)
		if warning != "" && req.Strict {
			// A bad point or spec is still the first thing to hear about.
			if err := faults.ValidatePoint(req.Point); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			if _, err := faults.ParseSpec(req.Spec); err != nil {
				writeError(w, http.StatusBadRequest, err)
				return
			}
			writeError(w, http.StatusUnprocessableEntity, fmt.Errorf("fault not armed (strict): %s", warning))
			return
		}
		info, err := c.faults.Add(req.Point, sel, req.Spec, "api")
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		if warning != "" {
			c.log.WithFields(map[string]any{"fault": info.ID, "point": info.Point, "target": info.Target}).Warn(warning)
		}
		writeJSON(w, http.StatusCreated, FaultResponse{Info: info, Warning: warning})
	})
	mux.HandleFunc("DELETE /v1/faults", func(w http.ResponseWriter, r *http.Request) {
		removed, err := c.faults.Clear(r.URL.Query()["id"]...)
		if err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, removed)
	})
	mux.HandleFunc("POST /v1/faults/release", func(w http.ResponseWriter, r *http.Request) {
		n, err := c.faults.Release(r.URL.Query()["id"]...)
		if err != nil {
			writeError(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, ReleaseResponse{Released: n})
	})
	mux.HandleFunc("POST /v1/kill", func(w http.ResponseWriter, r *http.Request) {
		var req KillRequest
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		resp, err := c.killProcess(r.Context(), req)
		if err != nil {
			writeError(w, httpCode(err), err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	})
	mux.HandleFunc("GET /v1/blame", func(w http.ResponseWriter, r *http.Request) {
		if c.tracker == nil {
			writeError(w, http.StatusConflict, fmt.Errorf("lock tracking is off (lock_tracking = false)"))
			return
		}
		writeJSON(w, http.StatusOK, c.tracker.report())
	})
	mux.HandleFunc("GET /v1/fixes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.toggles.State())
	})
	mux.HandleFunc("POST /v1/fixes", func(w http.ResponseWriter, r *http.Request) {
		var req FixRequest
		if err := decodeJSON(r, &req); err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		f, err := faults.ParseFix(req.Fix)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		_ = c.toggles.Set(f, req.On)
		c.log.WithFields(map[string]any{"fix": f, "on": req.On}).Info("fix toggled")
		writeJSON(w, http.StatusOK, c.toggles.State())
	})
	return mux
}

// maxAdminBody bounds a request body.
const maxAdminBody = 64 << 10

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, ErrorResponse{Error: err.Error()})
}

type peerUIDKey struct{}

// adminServer serves the admin API on a 0600 unix socket and refuses any
// caller whose uid (SO_PEERCRED) differs from the socket's owner.
type adminServer struct {
	http *http.Server
	ln   net.Listener
	path string
}

func (c *criService) startAdmin(path string) (*adminServer, error) {
	ln, err := listenUnix(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("listen on admin address %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("stat admin socket %s: %w", path, err)
	}
	owner := fi.Sys().(*syscall.Stat_t).Uid
	handler := c.adminHandler()
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, conn net.Conn) context.Context {
			uid, ok := peerUID(conn)
			if !ok {
				return ctx
			}
			return context.WithValue(ctx, peerUIDKey{}, uid)
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			uid, ok := r.Context().Value(peerUIDKey{}).(uint32)
			if !ok || uid != owner {
				writeError(w, http.StatusForbidden, fmt.Errorf("caller uid %d is not the admin socket's owner (uid %d)", uid, owner))
				return
			}
			handler.ServeHTTP(w, r)
		}),
	}
	a := &adminServer{http: srv, ln: ln, path: path}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.WithError(err).Error("admin server stopped")
		}
	}()
	return a, nil
}

// peerUID reads the caller's uid from the unix socket (SO_PEERCRED).
func peerUID(conn net.Conn) (uint32, bool) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return 0, false
	}
	return cred.Uid, true
}

func (a *adminServer) close() {
	a.http.Close()
	os.Remove(a.path)
}
