using Spectre.Console.Testing;
using RetriBooru.Metrics;
using RetriBooru.Metrics.Vqa;
using System.Text.Json.Nodes;
using Xunit;

namespace RetriBooru.Tests;

public class MetricsResultsTests
{
    static readonly AttributeSchema Schema = new([
        new AttributeSpec("hair", ["red", "blue"], new Dictionary<string, string> { ["red"] = "red_hair", ["blue"] = "blue_hair" }),
        new AttributeSpec("background", ["stripes", "dots"], new Dictionary<string, string> { ["stripes"] = "striped_background", ["dots"] = "polka_dot_background" }),
        new AttributeSpec("pose", ["left", "right"]),
    ]);

    [Fact]
    public void Prompt_consistency_checks_only_the_attributes_the_prompt_names()
    {
        var predicted = new Dictionary<string, string> { ["hair"] = "red", ["background"] = "dots", ["pose"] = "left" };
        var result = PromptConsistency.FromAttributes(Schema, predicted, ["1girl", "Red_Hair", "striped background", "smile"]);
        Assert.Equal(0.5, result.Score);
        Assert.Equal(["hair", "background"], result.Checks.Select(c => c.Attribute));
        Assert.True(result.Checks[0].Agrees);
        Assert.False(result.Checks[1].Agrees);
        Assert.Null(PromptConsistency.FromAttributes(Schema, predicted, ["1girl", "smile"]).Score);
        Assert.Equal(1.0, PromptConsistency.FromAttributes(Schema, predicted, ["left"]).Score);
        // An attribute the reader cannot read is left out even when asked: here the wrong background no longer counts.
        var readable = PromptConsistency.FromAttributes(Schema, predicted, ["red_hair", "striped_background"], new HashSet<string> { "background" });
        Assert.Equal(1.0, readable.Score);
        Assert.Equal(["hair"], readable.Checks.Select(c => c.Attribute));
        Assert.Null(PromptConsistency.FromAttributes(Schema, predicted, ["striped_background"], new HashSet<string> { "background" }).Score);
    }

    [Fact]
    public void An_attribute_read_below_one_and_a_half_times_chance_is_unreadable()
    {
        var options = new AttributeProbeOptions();
        // Two values each: chance 0.5, so 0.75 is the bar.
        var report = new ProbeReport(new Dictionary<string, double> { ["hair"] = 0.97, ["background"] = 0.74, ["pose"] = 0.75 }, 100, 20, 0.1, options);
        Assert.Equal(["background"], AttributeProbe.UnreadableAttributes(Schema, report));
        var none = report with { HeldOutAccuracy = new Dictionary<string, double> { ["hair"] = 1, ["background"] = 1, ["pose"] = 1 } };
        Assert.Empty(AttributeProbe.UnreadableAttributes(Schema, none));
    }

    [Fact]
    public void Results_table_writes_sample_set_and_summary_rows_with_config_and_commit()
    {
        using var dir = new TempDir();
        var table = new ResultsTable(bootstrapSeed: 3, resamples: 200);
        var rng = new Random(1);
        foreach (var model in new[] { "retrinet-tiny", "baseline" })
            for (int set = 0; set < 4; set++)
            {
                for (int k = 0; k < 3; k++)
                {
                    var scores = new Dictionary<string, double> { ["identity_face"] = 0.5 + 0.1 * rng.NextDouble() };
                    if (k != 1) scores["prompt_consistency"] = rng.Next(2);
                    table.Add(new ResultRow(model, "unseen", $"ref-{set}", k, 1000 + k, $"samples/{model}/{set}_{k}.png", scores));
                }
                table.Add(new ResultRow(model, "unseen", $"ref-{set}", null, null, null, new Dictionary<string, double> { ["swd"] = 0.1 * set }));
            }
        var config = new JsonObject { ["checkpoint"] = "runs/a, \"quoted\"", ["samples_per_reference"] = 3 };
        var (csv, json) = table.Write(dir.Path, config, "abc123");

        var lines = File.ReadAllLines(csv);
        Assert.Equal("row_type,model,split,reference_set,sample,seed,image,identity_face,identity_face_ci_low,identity_face_ci_high,identity_face_n,prompt_consistency,prompt_consistency_ci_low,prompt_consistency_ci_high,prompt_consistency_n,swd,swd_ci_low,swd_ci_high,swd_n", lines[0]);
        Assert.Equal(1 + 2 * 4 * 4 + 2, lines.Length);
        Assert.StartsWith("sample,retrinet-tiny,unseen,ref-0,0,1000,samples/retrinet-tiny/0_0.png,0.", lines[1]);
        Assert.StartsWith("set,retrinet-tiny,unseen,ref-0,,,,", lines[4]);
        var summaries = lines.Where(l => l.StartsWith("summary,")).ToList();
        Assert.Equal(2, summaries.Count);
        Assert.StartsWith("summary,baseline,unseen,", summaries[0]);

        var root = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal("abc123", (string)root["git_commit"]!);
        Assert.Equal("runs/a, \"quoted\"", (string)root["config"]!["checkpoint"]!);
        var swd = root["summaries"]![1]!["scores"]!["swd"]!;
        Assert.Equal("retrinet-tiny", (string)root["summaries"]![1]!["model"]!);
        Assert.Equal((0 + 0.1 + 0.2 + 0.3) / 4, (double)swd["mean"]!, 12);
        Assert.Equal(4, (int)swd["n"]!);
        Assert.True((double)swd["ci_low"]! <= (double)swd["mean"]! && (double)swd["mean"]! <= (double)swd["ci_high"]!);
        // Undefined prompt consistency (k == 1) is left out, not counted as zero.
        Assert.Equal(8, (int)root["summaries"]![1]!["scores"]!["prompt_consistency"]!["n"]!);
        Assert.Equal(16, root["rows"]!.AsArray().Count(r => (string)r!["model"]! == "retrinet-tiny"));
        // Per-sample scores: the interval resamples reference sets (their samples together), and the file says so.
        Assert.Equal("reference_set", (string)root["bootstrap"]!["resampled_unit"]!);
        var faceRows = table.Rows.Where(r => r.Model == "retrinet-tiny" && r.Scores.ContainsKey("identity_face")).ToList();
        var expected = Bootstrap.ClusteredMeanInterval("identity_face", faceRows.Select(r => r.Scores["identity_face"]).ToList(),
            faceRows.Select(r => r.ReferenceSetId).ToList(), 3, 200);
        var face = root["summaries"]![1]!["scores"]!["identity_face"]!;
        Assert.Equal((expected.Lower, expected.Upper), ((double)face["ci_low"]!, (double)face["ci_high"]!));
        Assert.NotEqual(Bootstrap.MeanInterval("identity_face", faceRows.Select(r => r.Scores["identity_face"]).ToList(), 3, 200).Lower, (double)face["ci_low"]!);

        // Same rows and seed -> same bytes.
        using var again = new TempDir();
        var (csv2, json2) = table.Write(again.Path, config, "abc123");
        Assert.Equal(File.ReadAllBytes(csv), File.ReadAllBytes(csv2));
        Assert.Equal(File.ReadAllBytes(json), File.ReadAllBytes(json2));
        Assert.Throws<ArgumentException>(() => table.Add(new ResultRow("m", "seen", "r", 0, 1, null, new Dictionary<string, double> { ["x"] = double.NaN })));
    }

    [Fact]
    public void Git_commit_is_read_from_the_repository_and_null_outside_one()
    {
        var gitMarker = Path.Combine(RepoPaths.Root, ".git");
        var commit = GitCommit.Describe(RepoPaths.Root);
        if (!Directory.Exists(gitMarker) && !File.Exists(gitMarker)) return; // e.g. tests run from a source tarball
        Assert.NotNull(commit);
        Assert.Matches("^[0-9a-f]{40}(-dirty)?$", commit);
        using var dir = new TempDir();
        Assert.Null(GitCommit.Describe(dir.Path));
    }
}

public class MetricsCliTests
{
    [Fact]
    public void Metrics_bench_prints_a_rate_for_every_embedder_and_swd()
    {
        var console = new Spectre.Console.Testing.TestConsole().Width(250);
        int code = RetriBooru.Cli.CliApp.Run(["metrics", "bench", "--images", "6", "--clip", "tiny"], console);
        Assert.Equal(0, code);
        foreach (var expected in new[] { "ResNet18", "MiniLM", "CLIP vision tiny", "CLIP text tiny", "attribute probe", "SWD pipeline", "images/s", "texts/s" })
            Assert.Contains(expected, console.Output);
        Assert.NotEqual(0, RetriBooru.Cli.CliApp.Run(["metrics", "bench", "--clip", "huge"], new Spectre.Console.Testing.TestConsole()));
    }
}

public class MetricsProbeSamplesTests
{
    [Fact]
    public void Probe_samples_load_from_files_infer_the_schema_and_skip_bad_files_with_reasons()
    {
        using var dir = new TempDir();
        var rng = new Random(8);
        var entries = new List<RetriBooru.Metrics.Vqa.LabelledImage>();
        for (int i = 0; i < 4; i++)
        {
            var scene = MetricsShapeWorld.RandomScene(MetricsShapeWorld.RandomCharacter(rng), rng) with { Pose = i % 2 == 0 ? "left" : "right" };
            using var drawn = MetricsShapeWorld.Draw(scene, 48);
            var path = dir.File($"{i}.png");
            File.WriteAllBytes(path, RetriBooru.Imaging.ImageTensor.EncodePng(drawn.Image));
            entries.Add(new(path, new Dictionary<string, string> { ["pose"] = scene.Pose, ["style"] = "flat" }));
        }
        var schema = RetriBooru.Metrics.Vqa.ProbeSamples.InferSchema(entries.Select(e => e.Attributes));
        // "style" has one value only, so it is not an attribute worth a head.
        Assert.Equal(["pose"], schema.Attributes.Select(a => a.Name));
        Assert.Equal(["left", "right"], schema["pose"].Values);

        File.WriteAllText(dir.File("broken.png"), "not a png");
        entries.Add(new(dir.File("broken.png"), new Dictionary<string, string> { ["pose"] = "left" }));
        entries.Add(new(dir.File("missing.png"), new Dictionary<string, string> { ["pose"] = "left" }));
        entries.Add(new(dir.File("0.png"), new Dictionary<string, string> { ["pose"] = "upside-down" }));
        using var loaded = RetriBooru.Metrics.Vqa.ProbeSamples.Load(entries, schema, size: 32);
        Assert.Equal(4, loaded.Samples.Count);
        Assert.All(loaded.Samples, s => Assert.Equal(32, s.Image.Width));
        Assert.Equal(3, loaded.Skipped.Count);
        Assert.Contains(loaded.Skipped, s => s.Path.EndsWith("broken.png") && s.Reason.StartsWith("not a decodable image", StringComparison.Ordinal));
        Assert.Contains(loaded.Skipped, s => s.Path.EndsWith("missing.png") && s.Reason == "file not found");
        Assert.Contains(loaded.Skipped, s => s.Reason.Contains("upside-down"));
    }
}
