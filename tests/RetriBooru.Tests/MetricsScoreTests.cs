using RetriBooru.Settings;
using RetriBooru.Metrics;
using RetriBooru.Metrics.Vqa;
using SkiaSharp;
using Xunit;
using Xunit.Abstractions;

namespace RetriBooru.Tests;

/// <summary>SWD's three properties and the leakage score, on drawn scenes scored by the real ResNet18 and the trained probe.</summary>
[Collection(MetricsProbeCollection.Name)]
public class MetricsScoreTests(MetricsProbeFixture fixture, ITestOutputHelper output)
{
    static readonly MetricsShapeWorld.Character Target = new("red", "purple", true);

    IdentityScore IdentityOf(MetricsShapeWorld.Drawn generation, IReadOnlyList<MetricsShapeWorld.Drawn> references)
    {
        var refViews = references.Select(r => IdentityViews.FromBoxes(r.Image, r.FaceBox, r.BodyBox, r.Mask)).ToList();
        var faces = refViews.Select(v => v.Face!).ToList();
        var clothes = refViews.Select(v => v.Clothing!).ToList();
        using var views = new DisposableViews(IdentityViews.FromBoxes(generation.Image, generation.FaceBox, generation.BodyBox, generation.Mask));
        var score = IdentitySimilarity.Score(fixture.Embedder, views.Views, faces, clothes);
        faces.Concat(clothes).ToList().ForEach(b => b.Dispose());
        return score;
    }

    double IdentityBaseline()
    {
        var rng = new Random(21);
        var items = new List<(float[], string)>();
        for (int i = 0; i < 16; i++)
        {
            var character = MetricsShapeWorld.RandomCharacter(rng);
            using var drawn = MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(character, rng));
            using var views = new DisposableViews(IdentityViews.FromBoxes(drawn.Image, drawn.FaceBox, drawn.BodyBox, drawn.Mask));
            var f = fixture.Embedder.Embed(views.Views.Face!);
            var b = fixture.Embedder.Embed(views.Views.Clothing!);
            // Combined identity similarity is the mean of face and clothing cosines; its unrelated baseline must be on the same scale.
            items.Add((VectorMath.Normalize(f.Concat(b).ToArray()), character.ToString()));
        }
        return IdentitySimilarity.UnrelatedBaseline(items);
    }

    double Swd(IReadOnlyList<MetricsShapeWorld.Drawn> generations, IReadOnlyList<MetricsShapeWorld.Drawn> references, double baseline)
    {
        var sims = generations.Select(g => IdentityOf(g, references).Combined).ToList();
        var evaluator = new SwdEvaluator(fixture.Probe, new ExactMatchAnswerDistance(), baseline);
        var result = evaluator.Evaluate(generations.Select(g => g.Image).ToList(), sims, references.Select(r => r.Image).ToList());
        output.WriteLine($"SWD {result.Value:F4}; sims {string.Join(" ", sims.Select(s => s.ToString("F3")))}; weights {string.Join(" ", result.IdentityWeights.Select(s => s.ToString("F2")))}; novelty {string.Join(" ", result.Novelty.Select(s => s.ToString("F2")))}; diversity {result.MeanPairDiversity:F3}");
        return result.Value;
    }

    [Fact]
    public void Swd_is_zero_for_copies_near_zero_for_unrelated_images_and_highest_for_identity_kept_with_variation()
    {
        var rng = new Random(7);
        var references = Enumerable.Range(0, 3).Select(_ => MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(Target, rng))).ToList();
        double baseline = IdentityBaseline();
        output.WriteLine($"identity baseline b = {baseline:F4}");

        var copies = Enumerable.Range(0, 6).Select(_ => MetricsShapeWorld.Draw(references[0].Scene)).ToList();
        var copiesOfEach = Enumerable.Range(0, 6).Select(i => MetricsShapeWorld.Draw(references[i % 3].Scene)).ToList();
        var others = new[] { new MetricsShapeWorld.Character("blue", "white", false), new("green", "black", false), new("yellow", "orange", false) };
        var unrelated = Enumerable.Range(0, 6).Select(i => MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(others[i % 3], rng))).ToList();
        var varied = Enumerable.Range(0, 6).Select(_ => MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(Target, rng))).ToList();

        double copy = Swd(copies, references, baseline);
        double copyEach = Swd(copiesOfEach, references, baseline);
        double other = Swd(unrelated, references, baseline);
        double good = Swd(varied, references, baseline);
        Assert.Equal(0, copy, 6);
        Assert.Equal(0, copyEach, 6);
        Assert.True(good > 0.02, $"identity-kept, varied generations score {good}");
        Assert.True(other < 0.2 * good, $"unrelated characters score {other} vs {good}");

        // Unrelated random noise images: the probe still answers, but they carry no identity.
        var noise = Enumerable.Range(0, 4).Select(_ => MetricsShapeWorld.Noise(rng)).ToList();
        var refViews = references.Select(r => IdentityViews.FromBoxes(r.Image, r.FaceBox, r.BodyBox, r.Mask)).ToList();
        var faces = refViews.Select(v => v.Face!).ToList();
        var clothes = refViews.Select(v => v.Clothing!).ToList();
        var noiseSims = noise.Select(n => IdentitySimilarity.Score(fixture.Embedder, IdentityViews.FromBoxes(n, new SKRectI(40, 10, 88, 58), new SKRectI(40, 60, 88, 110)), faces, clothes).Combined).ToList();
        var noiseSwd = new SwdEvaluator(fixture.Probe, new ExactMatchAnswerDistance(), baseline).Evaluate(noise, noiseSims, references.Select(r => r.Image).ToList());
        output.WriteLine($"noise SWD {noiseSwd.Value:F4}; sims {string.Join(" ", noiseSims.Select(s => s.ToString("F3")))}");
        Assert.True(noiseSwd.Value < 0.2 * good, $"noise scores {noiseSwd.Value} vs {good}");

        foreach (var d in references.Concat(copies).Concat(copiesOfEach).Concat(unrelated).Concat(varied)) d.Dispose();
        foreach (var b in noise.Concat(faces).Concat(clothes)) b.Dispose();
    }

    [Fact]
    public void Swd_formula_matches_a_hand_computed_value()
    {
        // Two questions; generation answers differ on one of them between g0 and g1, on both between g0 and g2.
        var g = new IReadOnlyDictionary<string, string>[]
        {
            new Dictionary<string, string> { ["background"] = "stripes", ["pose"] = "left" },
            new Dictionary<string, string> { ["background"] = "stripes", ["pose"] = "right" },
            new Dictionary<string, string> { ["background"] = "dots", ["pose"] = "right" },
        };
        var r = new IReadOnlyDictionary<string, string>[] { new Dictionary<string, string> { ["background"] = "stripes", ["pose"] = "left", ["hair"] = "red" } };
        // b = 0.5: sims 1.0, 0.75, 0.9 -> weights 1, 0.5, 0.8. Novelty (|Q| = 2): g0 equals the reference -> 0;
        // g1 and g2 differ from it by one and two answers -> 1.
        var result = SimilarityWeightedDiversity.Compute(g, [1.0, 0.75, 0.9], 0.5, new ExactMatchAnswerDistance(), r);
        Assert.Equal(["background", "pose"], result.QuestionIds);
        Assert.Equal(1.0, result.IdentityWeights[0], 12);
        Assert.Equal(0.5, result.IdentityWeights[1], 12);
        Assert.Equal(0.8, result.IdentityWeights[2], 12);
        Assert.Equal([0.0, 1.0, 1.0], result.Novelty);
        // Only pair (1,2) counts: 0.5 * 0.8 * d=0.5 * 1 = 0.2, averaged over 3 pairs.
        Assert.Equal(0.2 / 3, result.Value, 12);
        // Without references (novelty 1): (0,1) 1*0.5*0.5 + (0,2) 1*0.8*1 + (1,2) 0.2, over 3 pairs.
        var free = SimilarityWeightedDiversity.Compute(g, [1.0, 0.75, 0.9], 0.5, new ExactMatchAnswerDistance());
        Assert.Equal(1.25 / 3, free.Value, 12);
        Assert.Equal((0.5 + 1 + 0.5) / 3, free.MeanPairDiversity, 12);
        Assert.Throws<ArgumentException>(() => SimilarityWeightedDiversity.Compute(g[..1], [1.0], 0.5, new ExactMatchAnswerDistance()));
    }

    [Fact]
    public void Leakage_is_high_for_scheme_a_crops_of_the_target_and_low_for_unrelated_same_character_images()
    {
        var rng = new Random(31);
        var scorer = new LeakageScorer(fixture.Embedder);
        // Unrelated pictures of the character: each its own background pattern and colour, pose and framing.
        var scenes = Enumerable.Range(0, 8).Select(i => MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(Target, rng) with
        {
            Background = MetricsShapeWorld.Backgrounds[i % 4],
            Pose = MetricsShapeWorld.Poses[i % 3],
        }, 160)).ToList();
        var target = scenes[0];
        MaskedImage Masked(MetricsShapeWorld.Drawn d) => new(d.Image, d.Mask);

        double baseline = scorer.Baseline(scenes.Skip(4).Select(Masked).ToList());
        // Scheme a: references are crops (and a mirror) of the target itself, as the leakage study builds them.
        var crops = new[] { new SKRectI(0, 0, 140, 140), new SKRectI(20, 15, 160, 155), new SKRectI(10, 10, 150, 150) }
            .Select(box => new MaskedImage(ImageOps.Crop(target.Image, box), ImageOps.Crop(target.Mask, box))).ToList();
        var schemeA = scorer.Score(Masked(target), crops, baseline);
        var schemeB = scorer.Score(Masked(target), scenes.Skip(1).Take(3).Select(Masked).ToList(), baseline);
        output.WriteLine($"baseline {baseline:F4}; scheme a {schemeA}; scheme b {schemeB}");
        Assert.True(schemeA.Score > 0.5, $"scheme-a leakage {schemeA.Score}");
        foreach (var s in scenes.Skip(1).Take(3)) output.WriteLine($"target vs {s.Scene.Background}/{s.Scene.Pose}: {scorer.NonIdentitySimilarity(Masked(target), Masked(s)):F4}");
        Assert.True(schemeB.Score < 0.35, $"scheme-b leakage {schemeB.Score}");
        Assert.True(schemeA.Score > schemeB.Score + 0.3);
        foreach (var c in crops) { c.Image.Dispose(); c.IdentityMask!.Dispose(); }
        foreach (var s in scenes) s.Dispose();
    }

    [Fact]
    public void Bootstrap_interval_brackets_the_mean_is_reproducible_and_narrows_with_more_data()
    {
        var rng = new Random(2);
        var small = Enumerable.Range(0, 20).Select(_ => rng.NextDouble()).ToList();
        var large = Enumerable.Range(0, 500).Select(_ => rng.NextDouble()).ToList();
        var a = Bootstrap.MeanInterval("x", small, seed: 9);
        Assert.Equal(a, Bootstrap.MeanInterval("x", small, seed: 9));
        Assert.NotEqual(a.Lower, Bootstrap.MeanInterval("x", small, seed: 10).Lower);
        Assert.InRange(a.Mean, a.Lower, a.Upper);
        Assert.Equal(small.Average(), a.Mean, 12);
        var b = Bootstrap.MeanInterval("x", large, seed: 9);
        Assert.True(b.Upper - b.Lower < (a.Upper - a.Lower) / 2.5, $"{b} vs {a}");
        // Uniform(0,1): the CI of the mean of 500 draws covers 0.5 +- 0.05.
        Assert.InRange(b.Lower, 0.42, 0.5);
        Assert.InRange(b.Upper, 0.5, 0.58);
        var constant = Bootstrap.MeanInterval("c", [0.3, 0.3, 0.3]);
        Assert.Equal((0.3, 0.3), (constant.Lower, constant.Upper));
        Assert.Throws<ArgumentException>(() => Bootstrap.MeanInterval("nan", [1, double.NaN]));
        Assert.Throws<ArgumentException>(() => Bootstrap.MeanInterval("empty", []));
    }

    [Fact]
    public void A_clustered_bootstrap_resamples_reference_sets_and_widens_when_sets_differ()
    {
        // 8 sets of 4 samples; each set's samples agree with each other (a set is easy or hard), as in an evaluation.
        var rng = new Random(3);
        var values = new List<double>();
        var sets = new List<string>();
        for (int set = 0; set < 8; set++)
        {
            double level = set % 2 == 0 ? 0.85 : 0.2;
            for (int k = 0; k < 4; k++) { values.Add(Math.Clamp(level + (rng.NextDouble() - 0.5) * 0.2, 0, 1)); sets.Add($"set{set}"); }
        }
        var units = Bootstrap.MeanInterval("a", values, seed: 4);
        var clustered = Bootstrap.ClusteredMeanInterval("a", values, sets, seed: 4);
        Assert.Equal(units.Mean, clustered.Mean, 12);
        Assert.Equal(values.Count, clustered.Count);
        Assert.True(clustered.Upper - clustered.Lower > 1.5 * (units.Upper - units.Lower), $"{clustered} vs {units}");
        Assert.InRange(clustered.Mean, clustered.Lower, clustered.Upper);
        Assert.Equal(clustered, Bootstrap.ClusteredMeanInterval("a", values, sets, seed: 4));
        // The order of the rows does not matter beyond which set comes first; the sets' contents do.
        Assert.NotEqual(clustered.Lower, Bootstrap.ClusteredMeanInterval("a", values, sets, seed: 5).Lower);

        // One unit per set (set-level scores such as SWD): exactly the unit bootstrap.
        var singletons = Enumerable.Range(0, values.Count).Select(i => $"s{i}").ToList();
        Assert.Equal(units, Bootstrap.ClusteredMeanInterval("a", values, singletons, seed: 4));
        // A single set has no between-set spread: its samples are resampled.
        var one = Enumerable.Repeat("only", 6).ToList();
        Assert.Equal(Bootstrap.MeanInterval("b", values.Take(6).ToList(), seed: 4), Bootstrap.ClusteredMeanInterval("b", values.Take(6).ToList(), one, seed: 4));
        Assert.Throws<ArgumentException>(() => Bootstrap.ClusteredMeanInterval("c", [1, 2], ["x"]));
        Assert.Throws<ArgumentException>(() => Bootstrap.ClusteredMeanInterval("d", [1, double.NaN, 2], ["x", "y", "y"]));
    }

    [Fact]
    public void Evaluation_scorer_turns_a_reference_set_and_its_samples_into_result_rows()
    {
        var rng = new Random(41);
        var refScenes = Enumerable.Range(0, 2).Select(_ => MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(Target, rng))).ToList();
        var references = refScenes.Select(r => new ScoringReference(ImageOps.Crop(r.Image, r.FaceBox), Concept.Face, ImageOps.Crop(r.Mask, r.FaceBox)))
            .Concat(refScenes.Select(r => new ScoringReference(ImageOps.Crop(r.Image, r.BodyBox), Concept.Clothes, ImageOps.Crop(r.Mask, r.BodyBox)))).ToList();
        // The shape world's probe reads "hair" and "clothing"; the expected values are the target character's.
        var expected = new ExpectedAttributes(new Dictionary<string, string> { ["hair"] = Target.Hair }, new Dictionary<string, string> { ["clothing"] = Target.Clothing });
        var set = new ScoringReferenceSet("ref-0", references, "a girl with red hair", ["red_hair", "1girl"], LeakageBaseline: 0.3, Expected: expected);
        var scorer = new EvaluationScorer(new ScoringModels(fixture.Embedder, fixture.Probe, new ExactMatchAnswerDistance(), Probe: fixture.Probe), new SwdBaselines(Identity: 0.9));

        List<ResultRow> ScoreCharacter(MetricsShapeWorld.Character character, string model)
        {
            var drawn = Enumerable.Range(0, 3).Select(_ => MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(character, rng))).ToList();
            var samples = drawn.Select((d, k) => new ScoringSample(d.Image, k, 100 + k, $"{model}/{k}.png", d.FaceBox, d.BodyBox, d.Mask)).ToList();
            var rows = scorer.Score(model, "unseen", set, samples).ToList();
            drawn.ForEach(d => d.Dispose());
            return rows;
        }

        var same = ScoreCharacter(Target, "same");
        var other = ScoreCharacter(new("blue", "black", false), "other");
        Assert.Equal(4, same.Count);
        Assert.Equal([0, 1, 2, null], same.Select(r => r.SampleIndex));
        foreach (var row in same.Take(3))
            Assert.Equal(["attribute_agreement", "attribute_agreement_clothes", "attribute_agreement_face", "identity", "identity_clothing", "identity_face", "leakage", "prompt_consistency"],
                row.Scores.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(["swd"], same[3].Scores.Keys);
        Assert.Equal(100L, same[0].Seed);
        double Mean(List<ResultRow> rows, string key) => rows.Where(r => r.Scores.ContainsKey(key)).Average(r => r.Scores[key]);
        output.WriteLine($"identity same {Mean(same, "identity"):F3} other {Mean(other, "identity"):F3}; prompt same {Mean(same, "prompt_consistency"):F2} other {Mean(other, "prompt_consistency"):F2}");
        Assert.True(Mean(same, "identity") > Mean(other, "identity") + 0.05);
        Assert.Equal(1.0, Mean(same, "prompt_consistency"));
        Assert.Equal(0.0, Mean(other, "prompt_consistency"));
        // The other character has another hair and clothing colour: the probe sees the difference.
        output.WriteLine($"attribute agreement same {Mean(same, "attribute_agreement"):F2} other {Mean(other, "attribute_agreement"):F2}");
        Assert.True(Mean(same, "attribute_agreement") >= 0.8);
        Assert.True(Mean(other, "attribute_agreement") <= 0.2);

        var table = new ResultsTable();
        foreach (var row in same.Concat(other)) table.Add(row);
        Assert.Equal(2, table.Summaries().Count);
        foreach (var r in references) { r.Image.Dispose(); r.FigureMask!.Dispose(); }
        refScenes.ForEach(d => d.Dispose());
    }

    sealed class DisposableViews(IdentityViews views) : IDisposable
    {
        public IdentityViews Views { get; } = views;
        public void Dispose() { Views.Face?.Dispose(); Views.Clothing?.Dispose(); }
    }
}
