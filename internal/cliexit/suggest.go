package cliexit

import (
	"slices"
	"strings"
)

// suggest returns the candidates closest to what was typed, for a "did
// you mean" hint: those at the smallest edit distance (Levenshtein,
// ignoring case) of at most 2 and less than the typed length, where a
// candidate that starts with what was typed (three characters or more)
// counts as distance 1. Nothing is close to an empty string; a candidate
// that differs only in case is closest.
func suggest(typed string, candidates []string) []string {
	typed = strings.ToLower(typed)
	limit := min(2, len([]rune(typed))-1)
	var best []string
	bestDist := limit + 1
	for _, c := range candidates {
		d := levenshtein(typed, strings.ToLower(c))
		if d > 1 && len(typed) >= 3 && strings.HasPrefix(strings.ToLower(c), typed) {
			d = 1
		}
		switch {
		case d > limit || d > bestDist:
		case d < bestDist:
			best, bestDist = []string{c}, d
		case !slices.Contains(best, c):
			best = append(best, c)
		}
	}
	slices.Sort(best)
	return best
}

// levenshtein is the number of single-character insertions, deletions
// and substitutions that turn a into b.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// didYouMean is the hint for what suggest found: "did you mean X?", "did
// you mean X or Y?", or "" for nothing.
func didYouMean(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "did you mean " + names[0] + "?"
	}
	return "did you mean " + strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1] + "?"
}
