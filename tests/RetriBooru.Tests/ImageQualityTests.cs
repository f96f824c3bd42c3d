using RetriBooru.Metrics;
using SkiaSharp;
using Xunit;
using Xunit.Abstractions;

namespace RetriBooru.Tests;

/// <summary>KID's properties on feature vectors the test draws itself (no embedder: milliseconds).</summary>
public class ImageQualityTests(ITestOutputHelper output)
{
    /// <summary><paramref name="count"/> vectors of N(<paramref name="mean"/>, 1)^dim from a seeded generator.</summary>
    static List<float[]> Gaussian(int count, int dim, double mean, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, dim).Select(_ =>
        {
            double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
            return (float)(mean + Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }).ToArray()).ToList();
    }

    [Fact]
    public void Kid_is_about_zero_for_two_samples_of_one_distribution_and_clearly_positive_for_a_shifted_one()
    {
        var real = Gaussian(200, 16, 0, seed: 1);
        var same = KernelInceptionDistance.Compute(Gaussian(200, 16, 0, seed: 2), real, resamples: 200, seed: 3);
        var shifted = KernelInceptionDistance.Compute(Gaussian(200, 16, 0.5, seed: 2), real, resamples: 200, seed: 3);
        output.WriteLine($"same {same}; shifted {shifted}");
        Assert.True(same.Lower <= 0 && 0 <= same.Upper, $"the interval of two samples of one distribution holds 0: {same}");
        // A mean shift of 0.5 in every one of 16 dimensions moves the mean kernel value by far more than sampling noise.
        Assert.True(shifted.Lower > 0, $"a shifted distribution's interval lies above 0: {shifted}");
        Assert.True(Math.Abs(same.Value) < 0.1 * shifted.Value, $"same {same.Value} vs shifted {shifted.Value}");
        Assert.Equal((200, 200), (same.Generated, same.Real));
        // Seeded: the same call gives the same interval.
        Assert.Equal(same, KernelInceptionDistance.Compute(Gaussian(200, 16, 0, seed: 2), real, resamples: 200, seed: 3));
    }

    [Fact]
    public void Kid_of_a_set_against_its_own_halves_is_near_zero()
    {
        var set = Gaussian(200, 16, 0.3, seed: 5);
        var halves = KernelInceptionDistance.Compute(set.Take(100).ToList(), set.Skip(100).ToList(), resamples: 200, seed: 1);
        var shifted = KernelInceptionDistance.Mmd2(set.Take(100).ToList(), Gaussian(100, 16, 0.8, seed: 6));
        output.WriteLine($"halves {halves}; shifted {shifted}");
        Assert.True(halves.Lower <= 0 && 0 <= halves.Upper, $"halves {halves}");
        Assert.True(Math.Abs(halves.Value) < 0.1 * shifted, $"halves {halves.Value} vs shifted {shifted}");
    }

    [Fact]
    public void Kid_rejects_sets_of_fewer_than_two_vectors_and_vectors_of_different_lengths()
    {
        var two = Gaussian(2, 4, 0, seed: 1);
        Assert.Contains("at least 2", Assert.Throws<ArgumentException>(() => KernelInceptionDistance.Compute(two.Take(1).ToList(), two)).Message);
        Assert.Throws<ArgumentException>(() => KernelInceptionDistance.Compute(two, []));
        Assert.Throws<ArgumentException>(() => KernelInceptionDistance.Compute(two, [new float[4], new float[5]]));
        Assert.Throws<ArgumentException>(() => KernelInceptionDistance.Compute([new float[0], new float[0]], [new float[0], new float[0]]));
        Assert.Throws<ArgumentOutOfRangeException>(() => KernelInceptionDistance.Compute(two, two, resamples: -1));
    }

    [Fact]
    public void A_resample_with_one_distinct_vector_is_drawn_again_so_two_vector_sets_have_the_value_as_their_interval()
    {
        // Every resample of a two-vector set that has a within-set pair holds both vectors, so it equals the value;
        // counting single-item resamples (no pair, within-set mean 0) would spread the interval.
        var x = Gaussian(2, 8, 0, seed: 1);
        var y = Gaussian(2, 8, 1, seed: 2);
        var kid = KernelInceptionDistance.Compute(x, y, resamples: 100, seed: 4);
        Assert.Equal(kid.Value, kid.Lower, 9);
        Assert.Equal(kid.Value, kid.Upper, 9);
        Assert.Equal(KernelInceptionDistance.Mmd2(x, y), kid.Value, 12);
    }

    [Fact]
    public void Results_table_puts_whole_set_scores_into_the_summary_row_as_given()
    {
        using var dir = new TempDir();
        var table = new ResultsTable(bootstrapSeed: 1, resamples: 50);
        for (int k = 0; k < 3; k++)
            table.Add(new ResultRow("m", "seen", "set-0", k, k, null, new Dictionary<string, double> { ["identity"] = 0.1 * k }));
        var kid = new ScoreSummary("kid", 0.4, 0.3, 0.6, 3, 0.95, 200, 1);
        table.AddAggregate("m", "seen", kid);
        Assert.Equal(["identity", "kid"], table.ScoreNames);
        Assert.Equal(kid, table.Summaries().Single().Scores.Single(s => s.Name == "kid"));
        var (csv, json) = table.Write(dir.Path, new System.Text.Json.Nodes.JsonObject(), null, new System.Text.Json.Nodes.JsonObject { ["kid"] = 0.4 });
        var lines = File.ReadAllLines(csv);
        Assert.EndsWith(",kid,kid_ci_low,kid_ci_high,kid_n", lines[0]);
        Assert.EndsWith(",0.4,0.3,0.6,3", lines.Single(l => l.StartsWith("summary,", StringComparison.Ordinal)));
        Assert.All(lines.Where(l => l.StartsWith("sample,", StringComparison.Ordinal)), l => Assert.EndsWith(",,,,", l));
        var root = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal(0.4, (double)root["quality"]!["kid"]!);
        Assert.Equal(0.6, (double)root["summaries"]![0]!["scores"]!["kid"]!["ci_high"]!);

        Assert.Contains("already", Assert.Throws<ArgumentException>(() => table.AddAggregate("m", "seen", kid)).Message);
        Assert.Contains("row values", Assert.Throws<ArgumentException>(() => table.AddAggregate("m", "seen", kid with { Name = "identity" })).Message);
        Assert.Throws<ArgumentException>(() => table.AddAggregate("m", "seen", kid with { Name = "kid2", Upper = double.NaN }));
    }

    [Fact]
    public void Image_quality_position_is_zero_at_the_floor_and_one_at_the_ceiling()
    {
        var kid = new KidResult(0.3, 0.2, 0.4, 10, 10);
        var floor = new KidResult(0.1, 0.0, 0.2, 5, 5);
        var ceiling = new KidResult(2.1, 2.0, 2.2, 10, 10);
        Assert.Equal(0.1, new ImageQualityReport(kid, floor, ceiling).PositionInRange, 12);
        Assert.Equal(0, new ImageQualityReport(floor, floor, ceiling).PositionInRange, 12);
        Assert.Equal(1, new ImageQualityReport(ceiling, floor, ceiling).PositionInRange, 12);
    }
}

/// <summary>Readability and the KID reference points on drawn scenes, with the probe and ResNet18 the metric tests share.</summary>
[Collection(MetricsProbeCollection.Name)]
public class ImageQualityProbeTests(MetricsProbeFixture fixture, ITestOutputHelper output)
{
    static IReadOnlyList<string> Tags(MetricsShapeWorld.Scene scene) =>
        MetricsProbeFixture.Schema.Attributes.Select(a => a.TagOf(scene.Attributes[a.Name])).ToList();

    static List<MetricsShapeWorld.Drawn> Scenes(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => MetricsShapeWorld.Draw(MetricsShapeWorld.RandomScene(MetricsShapeWorld.RandomCharacter(rng), rng), 64)).ToList();
    }

    [Fact]
    public void Readability_is_one_when_the_samples_are_the_real_images_and_lower_when_prompts_are_not_followed()
    {
        var real = Scenes(16, seed: 41);
        try
        {
            var withPrompts = real.Select(d => (d.Image, Tags(d.Scene))).ToList();
            var same = Readability.Score(fixture.Probe, withPrompts, withPrompts)!;
            Assert.Equal(1.0, same.Value, 12);
            Assert.Equal((16, 16), (same.SampleCount, same.RealCount));
            Assert.True(same.Real > 0.5, $"the probe reads the drawn attributes: {same.Real}");

            // Each image asked for the next image's scene: the probe finds fewer of the prompted attributes.
            var ignored = real.Select((d, i) => (d.Image, Tags(real[(i + 1) % real.Count].Scene))).ToList();
            var off = Readability.Score(fixture.Probe, ignored, withPrompts)!;
            output.WriteLine($"readability of the real images {same.Value:F3} (agreement {same.Real:F3}); with other images' prompts {off.Value:F3}");
            Assert.True(off.Value < 0.8, $"samples that ignore their prompts read worse: {off.Value}");

            // Per attribute: every attribute asked is listed once with as many checks as images; the real side is the
            // same in both calls, and the overall agreement is the mean of the images' scores, so the per-attribute
            // agreements weighted by their checks add up to it here (every image asks every attribute).
            Assert.Equal(MetricsProbeFixture.Schema.Attributes.Select(a => a.Name), same.ByAttribute.Select(a => a.Attribute));
            Assert.All(same.ByAttribute, a => Assert.Equal((16, 16, a.Samples), (a.SampleChecks, a.RealChecks, a.Real)));
            Assert.Equal(off.Samples, off.ByAttribute.Average(a => a.Samples!.Value), 12);
            Assert.Equal(same.ByAttribute.Select(a => a.Real), off.ByAttribute.Select(a => a.Real));
            Assert.Contains(off.ByAttribute, a => a.Value < 1);
        }
        finally
        {
            foreach (var d in real) d.Dispose();
        }
    }

    [Fact]
    public void Real_pictures_score_near_the_kid_floor_and_noise_at_the_ceiling()
    {
        var real = Scenes(16, seed: 51);
        var fresh = Scenes(16, seed: 52);
        try
        {
            var reference = ImageQualityReference.Create(fixture.Embedder, real.Select(d => d.Image).ToList(), 64, seed: 1, resamples: 50);
            var sameWorld = reference.Score(fixture.Embedder, fresh.Select(d => d.Image).ToList());
            var random = new Random(3);
            var noise = Enumerable.Range(0, 16).Select(_ => ImageQualityReference.NoiseImage(64, random)).ToList();
            var noisy = reference.Score(fixture.Embedder, noise);
            foreach (var n in noise) n.Dispose();
            output.WriteLine($"floor {reference.RealFloor}; ceiling {reference.NoiseCeiling}; new drawings {sameWorld.Kid} (position {sameWorld.PositionInRange:F3}); noise {noisy.Kid} (position {noisy.PositionInRange:F3})");
            Assert.True(reference.RealFloor.Value < reference.NoiseCeiling.Value);
            Assert.True(sameWorld.PositionInRange < 0.25, $"new drawings of the same world sit near the floor: {sameWorld.PositionInRange}");
            Assert.True(noisy.PositionInRange > 0.75, $"fresh noise sits near the ceiling: {noisy.PositionInRange}");
        }
        finally
        {
            foreach (var d in real.Concat(fresh)) d.Dispose();
        }
    }
}
