package kv

import (
	"encoding/base64"
	"time"
	"unicode/utf8"
)

// JSONValue is a Value as the gateway's HTTP API and `gdp kv --json` show
// it: the value as text when it is valid UTF-8, always as standard base64.
type JSONValue struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
	Deleted     bool    `json:"deleted,omitempty"`
	Seqno       uint64  `json:"seqno"`
	Time        string  `json:"time"`
	At          uint64  `json:"at,omitempty"`
}

// JSON returns v as a JSONValue.
func (v Value) JSON() JSONValue {
	o := JSONValue{Key: v.Key, Deleted: v.Deleted, Seqno: v.Seqno, At: v.At, Time: v.Time.UTC().Format(time.RFC3339Nano)}
	if v.Deleted {
		return o
	}
	b := base64.StdEncoding.EncodeToString(v.Value)
	o.ValueBase64 = &b
	if utf8.Valid(v.Value) {
		s := string(v.Value)
		o.Value = &s
	}
	return o
}
