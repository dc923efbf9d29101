package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sirupsen/logrus"
)

// TextFormatter writes the classic layout, one line per entry:
//
//	YY/MM/DD HH:MM:SS.mmm N component: message [key=value key2=value2]
//
// N is the numeric level (1..5). "component: " is left out when the entry has
// no component field; the other fields follow sorted by key, values that hold
// spaces, quotes, brackets or '=' quoted; the brackets are left out when there
// are no fields. Nothing is written while the logger is at level 0.
type TextFormatter struct{}

// Format implements logrus.Formatter.
func (TextFormatter) Format(e *logrus.Entry) ([]byte, error) {
	if silenced(e) {
		return nil, nil
	}
	var b bytes.Buffer
	b.WriteString(e.Time.Format("06/01/02 15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(entryLevel(e.Level)))
	b.WriteByte(' ')
	if c := componentOf(e); c != "" {
		b.WriteString(c)
		b.WriteString(": ")
	}
	b.WriteString(strings.TrimRight(e.Message, "\n"))
	keys := fieldKeys(e)
	if len(keys) > 0 {
		b.WriteString(" [")
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(quoteValue(fieldString(e.Data[k])))
		}
		b.WriteByte(']')
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// JSONFormatter writes one JSON object per line:
//
//	{"time":"2026-11-21T10:04:05.000+01:00","level":3,"component":"routing","msg":"WHO command received","fields":{"l":"relay-dmz1"}}
//
// component and fields are left out when empty; error values are written as
// their message. Nothing is written while the logger is at level 0.
type JSONFormatter struct{}

// Format implements logrus.Formatter.
func (JSONFormatter) Format(e *logrus.Entry) ([]byte, error) {
	if silenced(e) {
		return nil, nil
	}
	type line struct {
		Time      string         `json:"time"`
		Level     int            `json:"level"`
		Component string         `json:"component,omitempty"`
		Msg       string         `json:"msg"`
		Fields    map[string]any `json:"fields,omitempty"`
	}
	l := line{
		Time:      e.Time.Format("2006-01-02T15:04:05.000Z07:00"),
		Level:     entryLevel(e.Level),
		Component: componentOf(e),
		Msg:       strings.TrimRight(e.Message, "\n"),
	}
	if keys := fieldKeys(e); len(keys) > 0 {
		l.Fields = make(map[string]any, len(keys))
		for _, k := range keys {
			l.Fields[k] = jsonValue(e.Data[k])
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, fmt.Errorf("encode log entry: %w", err)
	}
	return b.Bytes(), nil
}

func componentOf(e *logrus.Entry) string {
	v, ok := e.Data[ComponentKey]
	if !ok || v == nil {
		return ""
	}
	return fieldString(v)
}

func fieldKeys(e *logrus.Entry) []string {
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		if k != ComponentKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func fieldString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	default:
		return fmt.Sprint(v)
	}
}

// jsonValue keeps values that marshal well and turns the rest into text.
func jsonValue(v any) any {
	switch v := v.(type) {
	case nil, string, bool, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64, float32, float64:
		return v
	case error:
		return v.Error()
	case time.Duration:
		return v.String()
	case fmt.Stringer:
		return v.String()
	}
	if _, err := json.Marshal(v); err != nil {
		return fmt.Sprint(v)
	}
	return v
}

func quoteValue(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == '"' || r == '=' || r == '[' || r == ']' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
