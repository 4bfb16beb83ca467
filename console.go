package outboxcdc

import (
	"context"
	"errors"
	"fmt"

	"github.com/outbox-cdc/outbox-cdc/internal/admin"
)

// openAdmin builds the admin console and API (admin.enabled) and mounts
// them on the HTTP server. New has checked (admin.Check) that they are not
// exposed without authentication on an address other hosts can reach.
func (a *App) openAdmin(context.Context) error {
	cfg := a.cfg
	if !cfg.Admin.Enabled {
		return nil
	}
	if cfg.HTTP.Addr == "-" {
		a.logger.Warn("admin.enabled is true but http.addr is \"-\" (no HTTP server): the admin console and API are not served")
		return nil
	}
	h, err := admin.New(admin.Options{Config: cfg, Control: adminControl{a}, Logger: a.logger})
	if err != nil {
		return err
	}
	a.admin = h
	a.onClose(h.Close)
	a.server.Mount(h, h.Guard)
	if !cfg.Admin.HasAuth() {
		a.logger.Warn("the admin console and API are served without authentication on a loopback address: every local user and process is an operator; configure admin.tokens or admin.users",
			"addr", cfg.HTTP.Addr)
	}
	a.logger.Info("admin console enabled", "url", "http://"+a.server.Addr()+"/admin/", "tokens", len(cfg.Admin.Tokens), "users", len(cfg.Admin.Users))
	return nil
}

// adminControl is the App as the admin API sees it.
type adminControl struct{ a *App }

func (c adminControl) PauseSink(name string) error  { return adminError(c.a.PauseSink(name)) }
func (c adminControl) ResumeSink(name string) error { return adminError(c.a.ResumeSink(name)) }

func adminError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnknownSink):
		return fmt.Errorf("%w: %w", admin.ErrUnknownSink, err)
	}
	return err
}

func (c adminControl) Status() admin.Status {
	a := c.a
	s := a.Snapshot()
	st := admin.Status{
		Version: s.Version, Role: s.Role, Since: s.Since, UptimeSeconds: s.Uptime.Seconds(),
		InFlightEvents: s.InFlightEvents, InFlightBytes: s.InFlightBytes,
		Slot: admin.Slot{Name: s.Slot, Publication: s.Publication, ConfirmedLSN: s.ConfirmedLSN, LagBytes: s.LagBytes, LagSeconds: s.LagSeconds,
			RetainedWALBytes: s.RetainedWALBytes, WALStatus: s.WALStatus, ReadAt: s.SlotReadAt, Error: s.SlotError},
		Config: admin.EffectiveConfig(a.EffectiveConfig()),
	}
	if slot, _, err := a.server.SlotStatus(); err == nil && slot.Exists {
		st.Slot.ConfirmedFlushLSN = slot.ConfirmedFlushLSN
	}
	if h := s.Holder; h != nil {
		st.Slot.Holder = &admin.Holder{PID: h.PID, ApplicationName: h.ApplicationName, ClientAddr: h.ClientAddr, User: h.User, OutboxCDC: h.OutboxCDC}
	}
	conf := map[string]admin.Sink{}
	for _, sc := range a.cfg.Sinks {
		conf[sc.Name] = admin.SinkSummary(sc)
	}
	for _, k := range s.Sinks {
		v, ok := conf[k.Name]
		if !ok {
			v = admin.Sink{Name: k.Name, Type: "custom"}
		}
		v.Paused, v.Pending, v.LastError, v.LastErrorSince, v.ProgressAt = k.Paused, k.Pending, k.LastError, k.LastErrorSince, k.ProgressAt
		v.AcknowledgedLSN, v.Published, v.Acknowledged, v.DeadLettered = k.AcknowledgedLSN, k.Published, k.Acknowledged, k.DeadLettered
		v.State = admin.StateOf(v)
		st.Sinks = append(st.Sinks, v)
	}
	return st
}
