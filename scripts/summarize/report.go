package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// report writes report.md: the header, tables of mean ± sd over seeds,
// the plots, the claims and the commands.
func report(s *Summary, header, commands string) ([]byte, error) {
	var b bytes.Buffer
	if header != "" {
		h, err := os.ReadFile(header)
		if err != nil {
			return nil, err
		}
		b.Write(h)
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Seeds: %v (each trains every configuration with its own initial weights and data order; the same documents are held out). "+
		"Every number is mean ± sample standard deviation over the seeds.\n\n", s.Seeds)
	fmt.Fprintf(&b, "Rule: %s\n\n", s.Rule)

	b.WriteString("## Claims\n\n| claim | agrees | measured |\n|---|---|---|\n")
	for _, c := range s.Claims {
		v := "null (within the spread or mixed)"
		if strings.HasPrefix(c.Measured, notTestable) {
			v = "null (not testable)"
		}
		if c.Agrees != nil {
			v = fmt.Sprint(*c.Agrees)
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Claim, v, c.Measured)
	}

	b.WriteString("\n## Training\n\n| configuration | final validation loss (nats/byte) | retrieval answer loss at the training length (nats/digit) |\n|---|---|---|\n")
	for _, c := range configs {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c, summarise(s.Configs[c].ValLoss).format(4), summarise(s.Configs[c].TrainAnswerLoss).format(3))
	}
	b.WriteString("\n![validation loss](plots/val_loss.png)\n")

	pairedTable(&b, s)

	table := func(title, note string, get func(*Config) map[string]vals, format func(stat) string, img string) {
		var Ls []int
		for _, c := range configs {
			for _, L := range lengthKeys(get(s.Configs[c])) {
				Ls = appendUnique(Ls, L)
			}
		}
		if len(Ls) == 0 {
			return
		}
		sort.Ints(Ls)
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n| configuration |", title, note)
		for _, L := range Ls {
			fmt.Fprintf(&b, " %d |", L)
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(Ls)) + "\n")
		for _, c := range configs {
			fmt.Fprintf(&b, "| %s |", c)
			for _, L := range Ls {
				fmt.Fprintf(&b, " %s |", format(at(get(s.Configs[c]), L)))
			}
			b.WriteString("\n")
		}
		if img != "" {
			fmt.Fprintf(&b, "\n![%s](%s)\n", title, img)
		}
	}
	f3 := func(st stat) string { return st.format(3) }
	table("Loss against context length (RoPE theta x50)", "Loss (nats/byte) at context sizes L/2+1..L of held-out samples of L tokens (the last power-of-two bucket).",
		func(c *Config) map[string]vals { return c.LengthLoss }, f3, "plots/length_loss.png")
	table("Loss against context length (RoPE theta as trained)", "As above, RoPE theta unchanged.",
		func(c *Config) map[string]vals { return c.LengthLossTheta1 }, f3, "")
	table("Key retrieval (RoPE theta x50)", "Exact match of "+s.taskText()+" over every depth.",
		func(c *Config) map[string]vals { return c.Retrieval }, func(st stat) string { return st.pct() }, "plots/retrieval.png")
	table("Key retrieval (RoPE theta as trained)", "As above, RoPE theta unchanged.",
		func(c *Config) map[string]vals { return c.RetrievalTheta1 }, func(st stat) string { return st.pct() }, "")
	table("Loss on the value digits (RoPE theta x50)", "Teacher-forced loss of the value tokens (nats/digit; chance ln 10 = 2.303).",
		func(c *Config) map[string]vals { return c.RetrievalAnswerLoss }, f3, "plots/answer_loss.png")
	table("Attention on the key (RoPE theta x50)", "Attention probability that the head retrieving most puts on the target record, at the query predicting the value's first digit (mean over queries).",
		func(c *Config) map[string]vals { return c.KeyAttention }, f3, "plots/key_attention.png")

	if len(s.Inits) > 0 {
		b.WriteString("\n## Conversion initialisations\n\n(a)'s checkpoint at the conversion step, converted with each initialisation: validation loss zero-shot and after a short fine-tune of s (and b) only.\n\n| init | variant | zero-shot | after s-only fine-tune | calibration-text loss |\n|---|---|---|---|---|\n")
		var names []string
		for n := range s.Inits {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			r := s.Inits[n]
			cl := "-"
			if r.CalibLoss != nil {
				cl = summarise(r.CalibLoss).format(4)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", n, r.Variant, summarise(r.ZeroShot).format(4), summarise(r.SOnly).format(4), cl)
		}
	}
	if commands != "" {
		if c, err := os.ReadFile(commands); err == nil {
			b.WriteString("\n## Commands\n\n```\n")
			b.Write(c)
			b.WriteString("```\n")
		}
	}
	return b.Bytes(), nil
}

// pairedTable writes the differences of (b)-(f) from (a), paired by seed:
// final validation loss, loss at the longest length and retrieval at
// about 10x the training length (RoPE theta x50), and the same two with
// theta as trained.
func pairedTable(b *bytes.Buffer, s *Summary) {
	lossRef, accRef := s.claimLengths()
	ll, lm := strconv.Itoa(lossRef.long), strconv.Itoa(accRef.mid)
	a := s.Configs["a-softmax"]
	fmt.Fprintf(b, "\n## Differences from softmax, paired by seed\n\n"+
		"Per seed, configuration minus (a) with the same seed (data order and initial weights), then mean ± sd of those differences and the number of seeds where it is below (a) (above, for retrieval). "+
		"A seed moves every configuration alike, so paired differences separate configurations that the spreads above cannot; the claims' verdicts keep the stricter rule.\n\n"+
		"| configuration | validation loss | loss at %s, theta x50 | loss at %s, theta as trained | retrieval at %s, theta x50 | retrieval at %s, theta as trained |\n|---|---|---|---|---|---|\n", ll, ll, lm, lm)
	for _, c := range configs[1:] {
		x := s.Configs[c]
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", c,
			formatPaired(x.ValLoss, a.ValLoss, 1, 4, "", false),
			formatPaired(x.LengthLoss[ll], a.LengthLoss[ll], 1, 3, "", false),
			formatPaired(x.LengthLossTheta1[ll], a.LengthLossTheta1[ll], 1, 3, "", false),
			formatPaired(x.Retrieval[lm], a.Retrieval[lm], 100, 0, "%", true),
			formatPaired(x.RetrievalTheta1[lm], a.RetrievalTheta1[lm], 100, 0, "%", true))
	}
}
