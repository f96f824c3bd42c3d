using System.Text.Json;
using RetriBooru.Experiments;
using Xunit;

namespace RetriBooru.Tests;

public class ExperimentSpecTests
{
    [Fact]
    public void Every_committed_spec_validates_and_expands()
    {
        var files = Directory.GetFiles(Path.Combine(RepoPaths.Root, "experiments"), "*.json");
        Assert.Contains(files, f => f.EndsWith("prompt-dropout-ablation.json"));
        foreach (var file in files)
        {
            var spec = SpecLoader.Load(file);
            var quick = SpecLoader.Load(file, quick: true);
            Assert.Equal(Path.GetFileNameWithoutExtension(file), spec.Name);
            Assert.True(quick.Train.Steps <= spec.Train.Steps);
            Assert.NotEmpty(SpecLoader.Expand(spec));
        }
    }

    [Fact]
    public void Ablation_sweep_expands_to_one_point_per_dropout_rate()
    {
        var spec = SpecLoader.Load(Path.Combine(RepoPaths.Root, "experiments", "prompt-dropout-ablation.json"));
        var points = SpecLoader.Expand(spec);
        Assert.Equal([0.0, 0.1, 0.3, 0.5, 0.7], points.Select(p => p.Spec.Train.PromptDropout).ToArray());
        Assert.Equal(Enumerable.Range(0, 5), points.Select(p => p.Index));
        Assert.All(points, p => Assert.Empty(p.Spec.Sweep));
        Assert.Equal("prompt_dropout=0.3", points[2].Label);
    }

    [Fact]
    public void Sweeps_are_cartesian_products_in_axis_order()
    {
        var spec = SpecLoader.Parse("""{"name":"x","sweep":{"train.prompt_dropout":[0,0.5],"train.steps":[10,20,30]}}""", "x.json");
        var points = SpecLoader.Expand(spec);
        Assert.Equal(6, points.Count);
        Assert.Equal((0.0, 10), (points[0].Spec.Train.PromptDropout, points[0].Spec.Train.Steps));
        Assert.Equal((0.0, 30), (points[2].Spec.Train.PromptDropout, points[2].Spec.Train.Steps));
        Assert.Equal((0.5, 10), (points[3].Spec.Train.PromptDropout, points[3].Spec.Train.Steps));
    }

    [Fact]
    public void A_million_point_sweep_is_refused_by_counting_before_expanding()
    {
        // Six axes of ten values: a few hundred bytes of JSON, 10^6 points.
        var tenSteps = "[" + string.Join(",", Enumerable.Range(1, 10).Select(i => i * 10)) + "]";
        var tenRates = "[" + string.Join(",", Enumerable.Range(0, 10).Select(i => (i / 10.0).ToString(System.Globalization.CultureInfo.InvariantCulture))) + "]";
        var json = "{\"name\":\"x\",\"sweep\":{" + string.Join(",", new[]
        {
            $"\"train.prompt_dropout\":{tenRates}", $"\"train.reference_dropout\":{tenRates}", $"\"train.background_weight\":{tenRates}",
            $"\"train.steps\":{tenSteps}", $"\"base.steps\":{tenSteps}", $"\"evaluate.sampling_steps\":{tenSteps}",
        }) + "}}";
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var e = Assert.Throws<SpecValidationException>(() => SpecLoader.Parse(json, "experiments/huge.json"));
        Assert.Contains("experiments/huge.json", e.Message);
        Assert.Contains("$.sweep: 10 x 10 x 10 x 10 x 10 x 10 = 1,000,000 points, more than the 10,000", e.Message);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"refusing took {clock.Elapsed}");

        // A spec built in code is counted by Expand itself.
        var ten = Enumerable.Range(1, 10).Select(i => JsonSerializer.SerializeToElement(i * 10)).ToList();
        var built = new ExperimentSpec { Name = "x", Sweep = new Dictionary<string, IReadOnlyList<JsonElement>> { ["train.steps"] = ten, ["base.steps"] = ten, ["evaluate.sampling_steps"] = ten, ["evaluate.reference_sets"] = ten, ["evaluate.samples_per_reference"] = ten } };
        Assert.Contains("100,000 points", Assert.Throws<InvalidOperationException>(() => SpecLoader.Expand(built)).Message);
    }

    [Fact]
    public void A_typo_gets_a_clear_error_with_the_path_and_a_suggestion()
    {
        var e = Assert.Throws<SpecValidationException>(() =>
            SpecLoader.Parse("""{"name":"x","train":{"prompt_dropot":0.2}}""", "experiments/bad.json"));
        Assert.Contains("experiments/bad.json", e.Message);
        Assert.Contains("$.train.prompt_dropot: unknown field (did you mean 'prompt_dropout'?)", e.Message);
    }

    [Theory]
    [InlineData("""{"name":"x","train":{"prompt_dropout":1.5}}""", "$.train.prompt_dropout: 1.5 is outside [0, 1]")]
    [InlineData("""{"name":"x","train":{"steps":"many"}}""", "$.train.steps: expected a whole number")]
    [InlineData("""{"name":"x","models":["retrinett"]}""", "unknown model 'retrinett' (did you mean 'retrinet'?)")]
    [InlineData("""{"name":"x","sweep":{"train.dropout":[0.1]}}""", "$.sweep.train.dropout: 'train.dropout' is not a field of the spec")]
    [InlineData("""{"name":"x","schemes":["c"]}""", "unknown scheme 'c'")]
    [InlineData("""{"name":"x","train":{"prompt_view":"short"}}""", "$.train.prompt_view: unknown view 'short'; use full or context")]
    [InlineData("""{"name":"x","evaluate":{"prompt_view":"tags"}}""", "$.evaluate.prompt_view: unknown view 'tags'")]
    [InlineData("""{"name":"x","train":{"background_weight":2}}""", "$.train.background_weight: 2 is outside [0, 1]")]
    [InlineData("""{"name":"x","base":{"ema":1.5}}""", "$.base.ema: 1.5 is outside")]
    [InlineData("""{"name":"x","base":{"min_snr_gamma":-1}}""", "$.base.min_snr_gamma: -1 is outside")]
    [InlineData("""{"name":"x","train":{"min_snr_gamma":-0.5}}""", "$.train.min_snr_gamma: -0.5 is outside")]
    [InlineData("""{"name":"x","base":{"learning_rate_schedule":"cosin"}}""", "$.base.learning_rate_schedule: unknown learning-rate schedule 'cosin' (did you mean 'cosine'?); use constant or cosine")]
    [InlineData("""{"name":"x",""", "not valid JSON")]
    [InlineData("""{"train":{}}""", "$.name: required")]
    public void Bad_specs_are_rejected_with_the_problem(string json, string expected)
    {
        var e = Assert.Throws<SpecValidationException>(() => SpecLoader.Parse(json, "spec.json"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Quick_overrides_apply_only_with_quick()
    {
        const string json = """{"name":"x","train":{"steps":500},"quick":{"train.steps":5}}""";
        Assert.Equal(500, SpecLoader.Parse(json, "x").Train.Steps);
        Assert.Equal(5, SpecLoader.Parse(json, "x", quick: true).Train.Steps);
    }
}

public class RunStoreTests
{
    [Fact]
    public void Run_folders_are_never_reused_and_record_provenance()
    {
        using var tmp = new TempDir();
        var now = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        var first = RunFolder.Create(tmp.Path, "ablation", seed: 9, now: now);
        var second = RunFolder.Create(tmp.Path, "ablation", seed: 9, now: now);
        Assert.NotEqual(first.Path, second.Path);
        Assert.EndsWith("20260102-030405-ablation", first.Path);
        Assert.EndsWith("20260102-030405-ablation-2", second.Path);
        first.WriteJson("metrics/summary.json", new { identity = 0.5 });
        first.Finish("finished", new Dictionary<string, double> { ["identity"] = 0.5 });
        var reopened = RunFolder.Open(first.Path);
        Assert.Equal("finished", reopened.Info.Status);
        Assert.Equal(0.5, reopened.Info.Summary!["identity"]);
        var listed = RunIndex.List(tmp.Path);
        Assert.Equal(2, listed.Count);

        // A damaged run.json is listed as unreadable, with the file and the problem, instead of vanishing.
        File.WriteAllText(Path.Combine(second.Path, "run.json"), "{ not json");
        Assert.Single(RunIndex.List(tmp.Path));
        var (path, problem) = Assert.Single(RunIndex.Unreadable(tmp.Path));
        Assert.Equal(second.Path, path);
        Assert.Contains("run.json", problem);
        var console = new Spectre.Console.Testing.TestConsole();
        Spectre.Console.Testing.TestConsoleExtensions.Width(console, 200);
        Assert.Equal(0, RetriBooru.Cli.CliApp.Run(["runs", "--root", tmp.Path], console));
        Assert.Contains("unreadable run", console.Output);
    }

    [Fact]
    public void Provenance_records_the_git_commit_of_this_checkout()
    {
        var provenance = Provenance.Capture(RepoPaths.Root);
        Assert.Matches("^[0-9a-f]{40}$", provenance.GitCommit ?? "");
        Assert.Equal(Environment.ProcessorCount, provenance.Cores);
        Assert.StartsWith("2.10", provenance.LibTorch);
    }

    [Fact]
    public void Stage_cache_reuses_finished_stages_by_content()
    {
        using var tmp = new TempDir();
        var cache = new StageCache(tmp.Path);
        int runs = 0;
        var (a, reusedA) = cache.Run("base", new { steps = 10, seed = 1 }, dir => { runs++; File.WriteAllText(Path.Combine(dir, "x"), "1"); });
        var (b, reusedB) = cache.Run("base", new { steps = 10, seed = 1 }, _ => runs++);
        var (c, reusedC) = cache.Run("base", new { steps = 11, seed = 1 }, _ => runs++);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal((false, true, false), (reusedA, reusedB, reusedC));
        Assert.Equal(2, runs);
        // An interrupted stage (no done.json) is redone, not reused.
        Assert.Throws<InvalidOperationException>(() => cache.Run("base", new { steps = 12 }, _ => throw new InvalidOperationException("interrupted")));
        var (_, reusedD) = cache.Run("base", new { steps = 12 }, _ => runs++);
        Assert.False(reusedD);
    }
}

public class SweepLimitTests
{
    [Fact]
    public void Limiting_a_sweep_keeps_the_ends_and_spreads_the_rest()
    {
        var spec = SpecLoader.Load(Path.Combine(RepoPaths.Root, "experiments", "prompt-dropout-ablation.json"));
        var two = SpecLoader.Expand(SpecLoader.LimitSweep(spec, 2)).Select(p => p.Spec.Train.PromptDropout).ToArray();
        Assert.Equal([0.0, 0.7], two);
        var three = SpecLoader.Expand(SpecLoader.LimitSweep(spec, 3)).Select(p => p.Spec.Train.PromptDropout).ToArray();
        Assert.Equal([0.0, 0.3, 0.7], three);
        Assert.Equal(5, SpecLoader.Expand(SpecLoader.LimitSweep(spec, 9)).Count);
    }
}

public class StageCacheLockTests
{
    [Fact]
    public void Concurrent_runs_of_one_stage_produce_it_once()
    {
        using var tmp = new TempDir();
        var cache = new StageCache(tmp.Path);
        int produced = 0;
        var results = new System.Collections.Concurrent.ConcurrentBag<bool>();
        Parallel.For(0, 4, _ =>
        {
            var (_, reused) = cache.Run("stage", new { x = 1 }, dir => { Interlocked.Increment(ref produced); Thread.Sleep(200); File.WriteAllText(Path.Combine(dir, "out"), "1"); });
            results.Add(reused);
        });
        Assert.Equal(1, produced);
        Assert.Equal(3, results.Count(r => r));
    }
}

public class PerSetScoreTests
{
    [Fact]
    public void Per_set_scores_average_samples_and_keep_set_level_scores()
    {
        var rows = new List<RetriBooru.Metrics.ResultRow>
        {
            new("m", "seen", "s1", 0, 1, null, new Dictionary<string, double> { ["identity"] = 0.2 }),
            new("m", "seen", "s1", 1, 2, null, new Dictionary<string, double> { ["identity"] = 0.4 }),
            new("m", "seen", "s1", null, null, null, new Dictionary<string, double> { ["swd"] = 0.1 }),
            new("m", "seen", "s2", 0, 3, null, new Dictionary<string, double> { ["identity"] = 0.9 }),
        };
        var sets = ExperimentRunner.PerSetScores(rows, ["s1", "s2"]);
        Assert.Equal(0.3, sets[0]["identity"], 9);
        Assert.Equal(0.1, sets[0]["swd"], 9);
        Assert.Equal(0.9, sets[1]["identity"], 9);
        Assert.False(sets[1].ContainsKey("swd"));
    }
}
