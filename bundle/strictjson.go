package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// strictUnmarshal decodes JSON like json.Unmarshal but first refuses
// documents in which an object repeats a key, also in another letter case:
// encoding/json would let the last one win, matching keys case-insensitively,
// and a second implementation could read the same signed bytes differently.
func strictUnmarshal(b []byte, v any) error {
	if err := checkDuplicateKeys(b); err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func checkDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := walkValue(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err == nil {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func walkValue(dec *json.Decoder, depth int) error {
	if depth > 64 {
		return errors.New("JSON nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key, _ := k.(string)
			folded := strings.ToLower(key)
			if seen[folded] {
				return fmt.Errorf("JSON key %q appears twice in one object", key)
			}
			seen[folded] = true
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}
