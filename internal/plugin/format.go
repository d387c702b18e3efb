package plugin

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"

	seqv1 "github.com/seqops/sequencer-operator/api/v1alpha1"
)

// none stands for a value the operator has not reported (yet), as kubectl prints <none>.
const none = "<none>"

// StatusHeader is the one-line summary of a cluster: phase, leader, term, height, failure tolerance and readiness.
func StatusHeader(c *seqv1.SequencerCluster) string {
	s := c.Status
	phase := string(s.Phase)
	if phase == "" {
		// The operator has not written a status yet: say so instead of printing an empty phase.
		phase = "Unknown (no status yet)"
	}
	leader := s.Leader
	if leader == "" {
		leader = none
	}
	ready := s.Ready
	if ready == "" {
		ready = fmt.Sprintf("%d/%d", s.ReadyReplicas, c.DesiredReplicas())
	}
	return fmt.Sprintf("%s/%s: phase %s, leader %s, term %d, height %d, failure tolerance %d, ready %s",
		c.Namespace, c.Name, phase, leader, s.Term, s.Height, s.FailureTolerance, ready)
}

// PrintStatus writes the header line, the member table and the conditions that need attention.
// now is injected so that LAST-SEEN is testable.
func PrintStatus(w io.Writer, c *seqv1.SequencerCluster, now time.Time) error {
	if _, err := fmt.Fprintln(w, StatusHeader(c)); err != nil {
		return fmt.Errorf("cannot write status header: %w", err)
	}
	if c.Spec.Paused {
		if _, err := fmt.Fprintln(w, "spec.paused is set: membership changes, rollouts and switchovers are frozen"); err != nil {
			return fmt.Errorf("cannot write status header: %w", err)
		}
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return fmt.Errorf("cannot write status: %w", err)
	}
	if err := PrintMemberTable(w, c, now); err != nil {
		return err
	}
	notes := ConditionNotes(c.Status.Conditions)
	if len(notes) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("\n")
	for _, n := range notes {
		b.WriteString(n)
		b.WriteString("\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("cannot write conditions: %w", err)
	}
	return nil
}

// PrintMemberTable writes one row per member of status.members:
// NAME, ROLE, SUFFRAGE, HEIGHT, LAG, CATCHING-UP, HEALTHY, LAST-SEEN.
func PrintMemberTable(w io.Writer, c *seqv1.SequencerCluster, now time.Time) error {
	if len(c.Status.Members) == 0 {
		if _, err := fmt.Fprintln(w, "No members reported yet."); err != nil {
			return fmt.Errorf("cannot write member table: %w", err)
		}
		return nil
	}
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, "NAME\tROLE\tSUFFRAGE\tHEIGHT\tLAG\tCATCHING-UP\tHEALTHY\tLAST-SEEN")
	for _, m := range c.Status.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n",
			m.Name, Role(m, c.Status.Leader), orNone(m.Suffrage), m.Height, m.Lag,
			boolText(m.CatchingUp), boolText(m.Healthy), Since(m.LastSeen, now))
	}
	// The tab writer buffers every row; its Flush is where a write error surfaces.
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("cannot write member table: %w", err)
	}
	return nil
}

// PrintRaftMembers writes the Raft configuration as the operator last saw it: ID, ADDRESS, SUFFRAGE.
// Pods that are not (yet) Raft members have no ID and are left out.
func PrintRaftMembers(w io.Writer, c *seqv1.SequencerCluster) error {
	tw := printers.GetNewTabWriter(w)
	n := 0
	for _, m := range c.Status.Members {
		if m.ID == "" {
			continue
		}
		if n == 0 {
			fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE")
		}
		n++
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.ID, orNone(m.Address), orNone(m.Suffrage))
	}
	if n == 0 {
		fmt.Fprintf(tw, "No Raft members reported yet for %s/%s.\n", c.Namespace, c.Name)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("cannot write Raft members: %w", err)
	}
	return nil
}

// Role is what a member does: the Raft state it reports (Leader, Follower, Candidate, Shutdown, Unreachable).
// The cluster's leader is shown as Leader even when its own report is older than the operator's view of it,
// so the table never disagrees with the header. Another member still reporting Leader is shown as it
// reports: a cut-off old leader is worth seeing.
func Role(m seqv1.MemberStatus, leader string) string {
	if leader != "" && m.Name == leader {
		return "Leader"
	}
	return orNone(m.State)
}

// Since is how long ago t was, as kubectl prints ages (e.g. 12s, 5m); <none> when t is unset.
func Since(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return none
	}
	d := now.Sub(t.Time)
	if d < 0 {
		// Clock skew between the operator and this machine: it was seen "just now".
		d = 0
	}
	return duration.HumanDuration(d)
}

// ConditionNotes lists the conditions a reader should act on, one line each: Available or QuorumHealthy
// False, Degraded True, Progressing True (work in progress) and a refused switchover.
func ConditionNotes(conds []metav1.Condition) []string {
	var notes []string
	for _, c := range conds {
		bad := false
		switch c.Type {
		case seqv1.ConditionAvailable, seqv1.ConditionQuorumHealthy:
			bad = c.Status == metav1.ConditionFalse
		case seqv1.ConditionDegraded:
			bad = c.Status == metav1.ConditionTrue
		case seqv1.ConditionProgressing:
			bad = c.Status == metav1.ConditionTrue || c.Reason == seqv1.ReasonSwitchoverRejected || c.Reason == seqv1.ReasonPaused
		}
		if bad {
			notes = append(notes, fmt.Sprintf("%s=%s (%s): %s", c.Type, c.Status, c.Reason, c.Message))
		}
	}
	return notes
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func boolText(b bool) string {
	return strconv.FormatBool(b)
}
