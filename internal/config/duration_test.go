package config

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{`5s`, 5 * time.Second, ""},
		{`"5s"`, 5 * time.Second, ""},
		{`1m30s`, 90 * time.Second, ""},
		{`250ms`, 250 * time.Millisecond, ""},
		{`1h`, time.Hour, ""},
		{`0`, 0, ""},
		{`0s`, 0, ""},
		{`5`, 0, `line 1: duration "5": want a number with a unit`},
		{`five seconds`, 0, `duration "five seconds"`},
		{`""`, 0, `duration ""`},
		{`-1s`, 0, `must not be negative`},
		{`[5s]`, 0, `line 1: want a duration such as "5s"`},
		{`{s: 5}`, 0, `want a duration`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := yaml.Unmarshal([]byte(tt.in), &d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Unmarshal(%s) = %v, %v; want error containing %q", tt.in, d, err, tt.wantErr)
				}
				return
			}
			if err != nil || d.Std() != tt.want {
				t.Fatalf("Unmarshal(%s) = %v, %v; want %v", tt.in, d, err, tt.want)
			}
		})
	}
}

func TestDurationMarshal(t *testing.T) {
	type c struct {
		T Duration `yaml:"t" json:"t"`
	}
	in := c{T: Duration(90 * time.Second)}
	y, err := yaml.Marshal(in)
	if err != nil || string(y) != "t: 1m30s\n" {
		t.Fatalf("yaml = %q, %v", y, err)
	}
	var back c
	if err := yaml.Unmarshal(y, &back); err != nil || back != in {
		t.Fatalf("yaml round trip = %v, %v", back, err)
	}
	j, err := json.Marshal(in)
	if err != nil || string(j) != `{"t":"1m30s"}` {
		t.Fatalf("json = %s, %v", j, err)
	}
	back = c{}
	if err := json.Unmarshal(j, &back); err != nil || back != in {
		t.Fatalf("json round trip = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"t":"7"}`), &back); err == nil {
		t.Fatal("json accepted a duration without a unit")
	}
}
