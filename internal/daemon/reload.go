package daemon

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// reloadAll is SIGHUP with Spec.Apply set: the file at path is loaded and
// checked; a file with problems is refused, each problem logged on its own
// line, and nothing changes. Then the new log output, when the log
// settings other than the level changed, is opened (a failure refuses the
// reload), Spec.Apply applies the rest, and the log output is switched.
// It returns the new file's level. cur is the log section in force and
// closer the log output's closer; both are replaced on success.
func reloadAll[C Config](spec Spec[C], cfg C, path string, logger *logrus.Logger, cur *LogConfig, closer *io.Closer) (int, error) {
	log := Component(logger, "main")
	next, err := spec.Load(path)
	if err != nil {
		problems := flatten(err)
		for _, p := range problems {
			log.Error(p)
		}
		return 0, fmt.Errorf("configuration refused, the one in force is kept: %w", &LoadError{Path: path, Problems: problems})
	}
	nl := next.Logging()
	was, now := *cur, nl
	was.Level, now.Level = 0, 0 // the level is Level's to change and log
	var fresh *logrus.Logger
	var freshCloser io.Closer
	if was != now {
		if fresh, freshCloser, err = NewLogger(nl); err != nil {
			log.WithError(err).Error("new log settings refused")
			return 0, fmt.Errorf("configuration refused, the one in force is kept: %w", err)
		}
	}
	if err := spec.Apply(cfg, next, logger); err != nil {
		if freshCloser != nil {
			_ = freshCloser.Close()
		}
		return 0, err
	}
	if fresh != nil {
		for _, line := range FieldChanges("log", was, now) {
			log.Info(line)
		}
		logger.SetFormatter(fresh.Formatter)
		logger.SetOutput(fresh.Out)
		if err := (*closer).Close(); err != nil {
			log.WithError(err).Warn("closing the previous log output failed")
		}
		*closer = freshCloser
		log.WithField("config", path).Info("log output switched")
	}
	*cur = nl
	return nl.Level, nil
}

// FieldChanges lists the fields of two values of one struct type that
// differ, one "PREFIX.KEY OLD -> NEW" line each, KEY being the field's
// yaml key (or its name); a field that is itself a struct is walked with
// its key added to the prefix. Fields added to the struct later are
// covered without a change here.
func FieldChanges(prefix string, old, new any) []string {
	var out []string
	fieldChanges(prefix, reflect.ValueOf(old), reflect.ValueOf(new), &out)
	return out
}

func fieldChanges(prefix string, a, b reflect.Value, out *[]string) {
	t := a.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key := f.Name
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			key = tag
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		av, bv := a.Field(i), b.Field(i)
		if reflect.DeepEqual(av.Interface(), bv.Interface()) {
			continue
		}
		if av.Kind() == reflect.Struct && av.Type() != reflect.TypeOf(time.Time{}) {
			fieldChanges(key, av, bv, out)
			continue
		}
		*out = append(*out, fmt.Sprintf("%s %s -> %s", key, showValue(av), showValue(bv)))
	}
}

// showValue writes a field's value for a change line.
func showValue(v reflect.Value) string {
	if v.Kind() == reflect.String {
		if v.String() == "" {
			return `""`
		}
		return v.String()
	}
	if v.Kind() == reflect.Pointer && v.IsNil() {
		return "none"
	}
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	return fmt.Sprint(v.Interface())
}
