package conformance_test

import (
	"context"
	"slices"
	"testing"

	"github.com/gauntlet-conformance/gauntlet/conformance"
)

// A feature a check exercises at run time joins its result's features and
// the report's exercised features, once; a check that exercises nothing
// adds nothing.
func TestExercise(t *testing.T) {
	s := &conformance.Suite[struct{}]{
		Name:     "exercise",
		Features: []conformance.FeatureInfo{{Name: "Base", Doc: "b"}, {Name: "Proto", Doc: "p"}},
		Setup:    func(context.Context, conformance.Target) (struct{}, error) { return struct{}{}, nil },
	}
	s.Register(
		conformance.Check[struct{}]{ID: "E1", Name: "uses a protocol", Features: []conformance.Feature{"Base"},
			Run: func(ctx context.Context, _ struct{}) error {
				conformance.Exercise(ctx, "Proto")
				conformance.Exercise(ctx, "Proto")
				conformance.Exercise(ctx, "Base")
				return nil
			}},
		conformance.Check[struct{}]{ID: "E2", Name: "exercises nothing", Run: func(context.Context, struct{}) error { return nil }},
	)
	rep, err := conformance.Run(context.Background(), s, conformance.Target{Name: "t", Features: []conformance.Feature{"Base", "Proto"}}, conformance.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Results[0].Features; !slices.Equal(got, []conformance.Feature{"Base", "Proto"}) {
		t.Errorf("E1 features = %v, want [Base Proto]", got)
	}
	if got := rep.Results[1].Features; len(got) != 0 {
		t.Errorf("E2 features = %v, want none", got)
	}
	if !slices.Equal(rep.FeaturesExercised, []conformance.Feature{"Base", "Proto"}) {
		t.Errorf("exercised = %v, want [Base Proto]", rep.FeaturesExercised)
	}
}
