using RetriBooru.Cli;
using RetriBooru.Experiments;
using RetriBooru.Metrics;
using RetriBooru.Settings;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>Spec overrides (`run --set`) and study results pages (`runs page`).</summary>
public class ResultsPageTests
{
    const string Spec = """{"name":"study","description":"A study.","seed":1,"dataset":{"seed":7}}""";

    [Fact]
    public void Set_overrides_change_the_named_fields_after_the_quick_ones()
    {
        var spec = SpecLoader.Parse(Spec, "study.json", overrides: ["seed=2", "dataset.seed=8", "models=[\"retrinet\",\"text-only\"]", "report.title=Second seed"]);
        Assert.Equal(2, spec.Seed);
        Assert.Equal(8, spec.Dataset.Seed);
        Assert.Equal([ModelKind.RetriNet, ModelKind.TextOnly], spec.Models);
        Assert.Equal("Second seed", spec.Report.Title);
        // After the quick overrides: --set wins over them.
        var quick = SpecLoader.Parse("""{"name":"s","train":{"steps":100},"quick":{"train.steps":5}}""", "s.json", quick: true, overrides: ["train.steps=7"]);
        Assert.Equal(7, quick.Train.Steps);
    }

    [Theory]
    [InlineData("seed", "expected PATH=VALUE")]
    [InlineData("=3", "expected PATH=VALUE")]
    [InlineData("dataset.sed=8", "'dataset.sed' is not a field of the spec (did you mean 'dataset.seed'?)")]
    [InlineData("base.steps=many", "$.base.steps: expected a whole number")]
    [InlineData("train.steps=-5", "train.steps")]
    public void A_bad_override_is_one_line_naming_it(string setting, string expected)
    {
        var error = Assert.Throws<SpecValidationException>(() => SpecLoader.Parse(Spec, "study.json", overrides: [setting]));
        var problem = Assert.Single(error.Problems);
        Assert.Contains(expected, problem);
        Assert.DoesNotContain('\n', problem);
    }

    [Fact]
    public void Run_refuses_a_bad_override_before_doing_anything()
    {
        using var tmp = new TempDir();
        var console = new TestConsole().Width(220);
        var code = CliApp.Run(["run", Path.Combine(RepoPaths.Root, "experiments", "quickstart.json"), "--quick", "--set", "base.stesp=3", "--out", tmp.File("runs")], console);
        Assert.NotEqual(0, code);
        Assert.Contains("base.stesp", console.Output);
        Assert.False(Directory.Exists(tmp.File("runs")) && Directory.EnumerateDirectories(tmp.File("runs")).Any(), "no run folder for a spec that did not load");
    }

    /// <summary>A finished run of <see cref="Spec"/> with two models' evaluations on one split, their samples in the run's cache.</summary>
    static string CraftRun(string root, long seed, string[] overrides, double retrinetMean, string[]? retrinetSchemes = null, int threads = 2)
    {
        var spec = SpecLoader.Parse(Spec, "study.json", overrides: overrides);
        var run = RunFolder.Create(Path.Combine(root, "runs"), spec.Name, spec.Seed, specFile: "experiments/study.json", overrides: overrides,
            provenance: new Provenance { GitCommit = "0123456789abcdef0123456789abcdef01234567", GitDirty = false, Cores = 2, Threads = threads, LoadAverage = 0.4 });
        run.WriteJson("spec.json", spec);
        var evaluations = new List<ModelEvaluation>();
        var models = (retrinetSchemes ?? ["b"]).Select(scheme => ("retrinet", scheme, retrinetMean, SkiaSharp.SKColors.Red))
            .Append(("text-only", "b", 0.2, SkiaSharp.SKColors.Blue));
        foreach (var (model, scheme, mean, color) in models)
        {
            var dir = Path.Combine(root, "runs", ".cache", "evaluate", $"{model}-{scheme}-{seed}");
            var reference = Path.Combine(dir, "ref.png");
            var samples = Enumerable.Range(0, 4).Select(i => Path.Combine(dir, $"{i}.png")).ToList();
            Directory.CreateDirectory(dir);
            File.WriteAllBytes(reference, DataTestFiles.Png(16, 16, SkiaSharp.SKColors.Green));
            foreach (var s in samples) File.WriteAllBytes(s, DataTestFiles.Png(16, 16, color));
            evaluations.Add(new ModelEvaluation
            {
                Model = model, Scheme = scheme, Split = "seen", ResultsDir = dir,
                Summary = new Dictionary<string, ScoreSummary>
                {
                    ["attribute_agreement"] = new("attribute_agreement", mean, mean - 0.05, mean + 0.05, 32, 0.95, 1000, 1),
                    ["kid"] = new("kid", 12.5, 11, 14, 32, 0.95, 200, 1),
                },
                Sets = [new EvaluatedSet("set-a", [reference], samples)],
            });
        }
        ModelEvaluation.Write(run, evaluations);
        run.WriteJson("timings.json", new[] { new StageTiming("base", 100, false), new StageTiming("dataset", 0.1, true) });
        run.Finish("finished");
        return run.Path;
    }

    [Fact]
    public void A_page_of_two_seeds_shows_each_run_and_every_model_per_seed_with_intervals()
    {
        using var tmp = new TempDir();
        var first = CraftRun(tmp.File("a"), 1, [], 0.512, threads: 1);
        var second = CraftRun(tmp.File("b"), 2, ["seed=2", "dataset.seed=8"], 0.488);
        var page = tmp.File("docs/results/study.md");
        var console = new TestConsole().Width(220);
        Assert.Equal(0, CliApp.Run(["runs", "page", first, second, "--out", page], console));
        var text = File.ReadAllText(page);
        Assert.Contains("# study: results", text);
        Assert.Contains("`retribooru run experiments/study.json --set seed=2 --set dataset.seed=8`", text);
        // A run on fewer threads than cores says so in its command (the numbers depend on it), and in its machine column.
        Assert.Contains("`retribooru run experiments/study.json --threads 1`", text);
        Assert.Contains("2 cores, 1 thread, load 0.4", text);
        Assert.Contains("2 cores, 2 threads, load 0.4", text);
        Assert.Contains("| 1 / 7 |", text);
        Assert.Contains("| 2 / 8 |", text);
        Assert.Contains("0123456789", text);
        Assert.Contains("load 0.4 at start", text);
        Assert.Contains("1 computed, 1 reused", text);
        // The same model's seeds are adjacent rows.
        var seedOne = text.IndexOf("| retrinet | 1 / 7 | 0.512 [0.462, 0.562] |", StringComparison.Ordinal);
        var seedTwo = text.IndexOf("| retrinet | 2 / 8 | 0.488 [0.438, 0.538] |", StringComparison.Ordinal);
        Assert.True(seedOne > 0 && seedTwo > seedOne, text);
        Assert.True(text.IndexOf("| text-only | 1 / 7 |", StringComparison.Ordinal) > seedTwo, text);
        Assert.Contains("12.500 [11.000, 14.000]", text);
        Assert.DoesNotContain("readability", text.Split("## Seen split")[1].Split('\n')[2]);
        using var grid = SkiaSharp.SKBitmap.Decode(tmp.File("docs/results/study-seen.png"));
        Assert.NotNull(grid);
        Assert.Contains("(study-seen.png)", text);

        // A run of the study in another setting is told apart from the seeds by its other overrides.
        var variant = CraftRun(tmp.File("c"), 1, ["train.prompt_view=full"], 0.3);
        var three = ResultsPage.Render([RunResults.Load(first), RunResults.Load(second), RunResults.Load(variant)], tmp.Path, "g.png", "caption", reading: null);
        Assert.Contains("| model | run | attribute agreement |", three);
        Assert.Contains("| retrinet | 1 / 7, train.prompt_view=full | 0.300", three);
        Assert.Contains("| retrinet | 1 / 7 | 0.512", three);
    }

    [Fact]
    public void A_study_of_both_schemes_gets_a_scheme_column_and_text_only_none()
    {
        using var tmp = new TempDir();
        var run = RunResults.Load(CraftRun(tmp.File("a"), 1, [], 0.5, ["a", "b"]));
        var text = ResultsPage.Render([run], tmp.Path, "grid.png", "caption", reading: null);
        Assert.Contains("| model | scheme | attribute agreement |", text);
        Assert.Contains("| retrinet | a | 0.500", text);
        Assert.Contains("| retrinet | b | 0.500", text);
        Assert.Contains("| text-only | - | 0.200", text);
        var single = ResultsPage.Render([RunResults.Load(CraftRun(tmp.File("b"), 1, [], 0.5))], tmp.Path, "grid.png", "caption", reading: null);
        Assert.Contains("| model | attribute agreement |", single);
    }

    [Fact]
    public void Regenerating_a_page_keeps_its_reading_and_replaces_the_rest()
    {
        using var tmp = new TempDir();
        var run = CraftRun(tmp.File("a"), 1, [], 0.512);
        var page = tmp.File("study.md");
        var results = new[] { RunResults.Load(run) };
        ResultsPage.Write(results, page, new ResultsPageOptions());
        Assert.Null(ResultsPage.ExistingReading(File.ReadAllText(page)));
        File.WriteAllText(page, File.ReadAllText(page).Replace("0.512", "9.999") + "\n## Reading\n\nRetriNet copies colours.\n");
        ResultsPage.Write(results, page, new ResultsPageOptions());
        var text = File.ReadAllText(page);
        Assert.Contains("0.512", text);
        Assert.DoesNotContain("9.999", text);
        Assert.EndsWith("## Reading\n\nRetriNet copies colours.\n", text);
    }

    [Fact]
    public void The_grid_shrinks_to_fit_the_size_limit_or_the_page_says_it_cannot()
    {
        using var tmp = new TempDir();
        var results = new[] { RunResults.Load(CraftRun(tmp.File("a"), 1, [], 0.5)) };
        var big = ResultsPage.Write(results, tmp.File("big.md"), new ResultsPageOptions { GridCell = 96 });
        var bigBytes = new FileInfo(big).Length;
        var small = ResultsPage.Write(results, tmp.File("small.md"), new ResultsPageOptions { GridCell = 96, MaxGridBytes = (int)bigBytes - 1 });
        Assert.True(new FileInfo(small).Length < bigBytes);
        var error = Assert.Throws<InvalidDataException>(() => ResultsPage.Write(results, tmp.File("none.md"), new ResultsPageOptions { MaxGridBytes = 10 }));
        Assert.Contains("does not fit", error.Message);
        Assert.False(File.Exists(tmp.File("none.md")), "no page without its grid");
    }

    [Fact]
    public void Unfinished_runs_and_runs_of_different_studies_are_refused()
    {
        using var tmp = new TempDir();
        var run = CraftRun(tmp.File("a"), 1, [], 0.5);
        var other = CraftRun(tmp.File("b"), 1, ["name=other"], 0.5);
        var mixed = Assert.Throws<InvalidDataException>(() => ResultsPage.Write([RunResults.Load(run), RunResults.Load(other)], tmp.File("p.md"), new ResultsPageOptions()));
        Assert.Contains("different studies", mixed.Message);
        var json = Path.Combine(run, "run.json");
        File.WriteAllText(json, File.ReadAllText(json).Replace("\"finished\"", "\"interrupted\""));
        var unfinished = Assert.Throws<InvalidDataException>(() => ResultsPage.Write([RunResults.Load(run)], tmp.File("p.md"), new ResultsPageOptions()));
        Assert.Contains("interrupted", unfinished.Message);
    }

    [Fact]
    public void A_notebook_finds_the_finished_run_of_the_current_spec_or_is_told_the_command_that_makes_it()
    {
        using var tmp = new TempDir();
        var spec = SpecLoader.Parse(Spec, "study.json");
        var runs = tmp.File("a/runs");
        var none = Assert.Throws<StudyNotRunException>(() => StudyRuns.Finished(runs, spec, "experiments/study.json", "about 5 minutes"));
        Assert.Contains("no run of 'study'", none.Message);
        Assert.Contains("-- run experiments/study.json --out " + runs, none.Message);

        CraftRun(tmp.File("a"), 2, ["seed=2"], 0.4);
        var stale = Assert.Throws<StudyNotRunException>(() => StudyRuns.Finished(runs, spec, "experiments/study.json", "about 5 minutes"));
        Assert.Contains("another version of experiments/study.json", stale.Message);

        var matching = CraftRun(tmp.File("a"), 1, [], 0.6);
        Assert.Equal(matching, StudyRuns.Finished(runs, spec, "experiments/study.json", "about 5 minutes").Run.Path);
        // An unfinished run of the same spec is not the results.
        var json = Path.Combine(matching, "run.json");
        File.WriteAllText(json, File.ReadAllText(json).Replace("\"finished\"", "\"interrupted\""));
        Assert.Throws<StudyNotRunException>(() => StudyRuns.Finished(runs, spec, "experiments/study.json", "about 5 minutes"));
    }
}
