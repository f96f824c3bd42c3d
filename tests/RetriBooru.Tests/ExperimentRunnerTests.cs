using RetriBooru.Runtime;
using RetriBooru.Cli;
using RetriBooru.Experiments;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>One quick quickstart run shared by the runner tests (the expensive part).</summary>
public sealed class QuickstartRun : IDisposable
{
    readonly TempDir _dir = new();
    public string Runs => Path.Combine(_dir.Path, "runs");
    public int ExitCode { get; }
    public string Output { get; }

    public QuickstartRun()
    {
        var console = new TestConsole().Width(220);
        ExitCode = CliApp.Run(["quickstart", "--quick", "--out", Runs], console);
        Output = console.Output;
    }

    public void Dispose() => _dir.Dispose();
}

public class ExperimentRunnerTests(QuickstartRun quickstart) : IClassFixture<QuickstartRun>
{
    [Fact]
    public void Quickstart_quick_runs_end_to_end_and_prints_results()
    {
        Assert.True(quickstart.ExitCode == 0, quickstart.Output);
        foreach (var expected in new[] { "stages", "dataset", "base", "results: mean [95% CI]", "retrinet", "text-only", "report:", "kid", "readability", "kid reference points" })
            Assert.True(quickstart.Output.Contains(expected), $"missing '{expected}' in:\n{quickstart.Output}");
        // Log output (not a terminal) is readable: no raw progress records, at most a line per 10% of each dataset phase.
        Assert.DoesNotContain("DatasetProgress {", quickstart.Output);
        var datasetLines = quickstart.Output.Split('\n').Count(l => l.Contains(" dataset"));
        Assert.True(datasetLines < 80, $"{datasetLines} dataset progress lines");
        // The fixture's run is the oldest (another test reruns the quickstart into the same folder).
        var run = RunIndex.List(quickstart.Runs).Last();
        Assert.Equal("finished", run.Info.Status);
        Assert.Matches("^[0-9a-f]{40}$", run.Info.Provenance?.GitCommit ?? "");
        foreach (var file in new[] { "run.json", "spec.json", "resolved_points.json", "evaluations.json", "timings.json", "metrics/summary.csv", "report.html" })
            Assert.True(File.Exists(Path.Combine(run.Path, file)), $"{file} missing");
        // The spec's evaluate.probe_world (200 in the quick version) reaches the suite: the probe trained on that many new characters.
        var suite = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(run.Path, "evaluation_suite.json")))!;
        Assert.StartsWith("200 pictures of new random characters", (string?)suite["probe_training"]);
        // Its weights are kept under the stage cache for every other dataset of the same seed (they depend on no dataset).
        var shared = Path.Combine(quickstart.Runs, ".cache", ExperimentRunner.ProbeWorldCacheFolder);
        Assert.Contains(Directory.GetDirectories(shared), d => File.Exists(Path.Combine(d, "probe.weights")) && File.Exists(Path.Combine(d, "world-key.json")));
    }

    [Fact]
    public void Attributes_re_read_from_the_samples_reproduce_the_runs_agreement_and_split_it_per_attribute()
    {
        var runPath = RunIndex.List(quickstart.Runs).Last().Path;
        var results = RunResults.Load(runPath);
        var rates = AttributeBreakdown.Read(results);
        Assert.Equal(results.Evaluations.Count, rates.Count);
        foreach (var r in rates)
        {
            var evaluation = results.Evaluations.Single(e => e.Model == r.Model && e.Scheme == r.Scheme && e.Split == r.Split && e.Point == r.Point);
            Assert.True(r.MatchesRun, $"{r.Model}/{r.Split}: re-read {r.Agreement} vs run {r.RecordedAgreement}");
            Assert.Equal(evaluation.Summary["attribute_agreement"].Count, r.Samples);
            // Every reference set shows all four face attributes, so their rates average to the run's face agreement.
            var face = Metrics.AttributeAgreement.FaceAttributes.Average(a => r.Rates[a]);
            Assert.Equal(evaluation.Summary["attribute_agreement_face"].Mean, face, 9);
            Assert.All(r.Rates.Values, v => Assert.InRange(v, 0, 1));
        }
        // Real pictures, scored like the samples: one row per split, every set's target among them (scheme b: never a reference's source).
        var withReal = AttributeBreakdown.Read(results, realPictures: true);
        var real = withReal.Where(r => r.Model == AttributeBreakdown.RealPicturesModel).ToList();
        Assert.Equal(results.Evaluations.Select(e => e.Split).Distinct().Order(), real.Select(r => r.Split).Order());
        foreach (var r in real)
        {
            int sets = results.Evaluations.Where(e => e.Split == r.Split).SelectMany(e => e.Sets).Select(s => s.Id).Distinct().Count();
            Assert.InRange(r.Samples, sets, int.MaxValue);
            Assert.Null(r.RecordedAgreement);
            Assert.InRange(r.Agreement, 0, 1);
            Assert.Equal(Metrics.AttributeAgreement.FaceAttributes.Count, Metrics.AttributeAgreement.FaceAttributes.Count(a => r.Rates.ContainsKey(a)));
        }
        Assert.Equal(rates.Select(r => (r.Model, r.Split, r.Samples, r.Agreement)),
            withReal.Where(r => r.Model != AttributeBreakdown.RealPicturesModel).Select(r => (r.Model, r.Split, r.Samples, r.Agreement)));
        var console = new TestConsole().Width(240);
        Assert.Equal(0, CliApp.Run(["runs", "attributes", runPath, "--split", "unseen"], console));
        Assert.Contains("hair_color", console.Output);
        Assert.Contains(AttributeBreakdown.RealPicturesModel, console.Output);
        Assert.DoesNotContain("warning", console.Output);
        var csv = File.ReadAllLines(Path.Combine(runPath, AttributeBreakdown.CsvFile));
        Assert.StartsWith("point,point_label,model,scheme,split,samples,hair_color", csv[0]);
        Assert.Equal(1 + rates.Count(r => r.Split == "unseen") + 1, csv.Length);
        Assert.Contains(csv, line => line.StartsWith("-1,,real pictures,b,unseen,", StringComparison.Ordinal));
        // A copy of the run without its suite description cannot say which probe scored it: one line naming the file.
        using var copy = new TempDir();
        foreach (var file in new[] { "run.json", "spec.json", ModelEvaluation.FileName })
            File.Copy(Path.Combine(runPath, file), Path.Combine(copy.Path, file));
        var error = Assert.Throws<InvalidDataException>(() => AttributeBreakdown.Read(RunResults.Load(copy.Path)));
        Assert.Contains("evaluation_suite.json: missing", error.Message);
    }

    [Fact]
    public void Attributes_of_evaluations_reused_from_another_dataset_folder_are_read_not_dropped()
    {
        // A study whose evaluation stages came from the cache of another run (stages are keyed by the dataset's content)
        // records references under that run's dataset folder; its own suite names another folder with the same files.
        var runPath = RunIndex.List(quickstart.Runs).Last().Path;
        var original = AttributeBreakdown.Read(RunResults.Load(runPath));
        using var temp = new TempDir();
        var run = Path.Combine(temp.Path, "run");
        CopyTree(runPath, run);
        // Evaluations point at ../.cache (the stage cache beside the run folder).
        Directory.CreateSymbolicLink(Path.Combine(temp.Path, ".cache"), Path.Combine(quickstart.Runs, ".cache"));
        var suitePath = Path.Combine(run, "evaluation_suite.json");
        var suite = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(suitePath))!;
        var dataset = Path.Combine(temp.Path, "same-dataset-elsewhere");
        CopyTree((string)suite["dataset"]!, dataset);
        suite["dataset"] = dataset;
        File.WriteAllText(suitePath, suite.ToJsonString());

        var rates = AttributeBreakdown.Read(RunResults.Load(run));
        Assert.Equal(original.Count, rates.Count);
        Assert.All(rates, r => Assert.True(r.MatchesRun, $"{r.Model}/{r.Split}: re-read {r.Agreement} vs run {r.RecordedAgreement}"));

        // A corrupt real picture (a set's own target) is named and left out of its real-pictures row; the row stays.
        var results = RunResults.Load(run);
        var realBefore = AttributeBreakdown.Read(results, "unseen", realPictures: true).Single(r => r.Model == AttributeBreakdown.RealPicturesModel);
        var firstSet = results.Evaluations.First(e => e.Split == "unseen").Sets[0];
        var manifest = Data.ManifestReader.Read(Path.Combine(dataset, Data.DatasetLayout.ManifestPath(Settings.ReferenceScheme.B)));
        var targetImage = Path.Combine(dataset, manifest.First(e => e.Target == firstSet.Id).Image);
        File.WriteAllBytes(targetImage, [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
        var skipped = new List<string>();
        var realAfter = AttributeBreakdown.Read(results, "unseen", realPictures: true, skipped: skipped).Single(r => r.Model == AttributeBreakdown.RealPicturesModel);
        // (Read once per set whose character and outfit it shows.)
        Assert.NotEmpty(skipped);
        Assert.All(skipped, line => Assert.Contains(Path.GetFileName(targetImage), line));
        Assert.Equal(realBefore.Samples - skipped.Count, realAfter.Samples);

        // A dataset that does not hold the references (its manifests gone) is named, not silently left out.
        Directory.Delete(Path.Combine(dataset, Data.DatasetLayout.ManifestsFolder), recursive: true);
        var error = Assert.Throws<InvalidDataException>(() => AttributeBreakdown.Read(RunResults.Load(run)));
        Assert.Contains("not in this dataset's manifests", error.Message);
    }

    static void CopyTree(string from, string to)
    {
        foreach (var directory in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, directory)));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }

    [Fact]
    public void Report_contains_every_section()
    {
        var run = RunIndex.List(quickstart.Runs).Last();
        var html = File.ReadAllText(Path.Combine(run.Path, "report.html"));
        foreach (var id in ReportBuilder.SectionIds)
            Assert.True(html.Contains($"<section id=\"{id}\">"), $"report section '{id}' missing");
        Assert.True(html.Contains("Plotly.newPlot('chart-"), "charts are drawn");
        Assert.True(html.Contains("data:image/png;base64,"), "sample grids are inline images");
        Assert.True(html.Contains("floor: real vs real") && html.Contains("ceiling: noise vs real"), "the image quality table shows KID's reference points");
        Assert.False(html.Contains("<script src="), "the report must open offline");
    }

    [Fact]
    public void Runs_grid_writes_a_labelled_png_with_references_and_every_model()
    {
        var run = RunIndex.List(quickstart.Runs).Last();
        var results = RunResults.Load(run.Path);
        using (var grid = ReportBuilder.ComparisonGrid(results.Evaluations, "unseen", 2)!)
        {
            int models = results.Evaluations.Where(e => e.Split == "unseen").Select(e => e.Label).Distinct().Count();
            Assert.Equal(2, models);
            Assert.Equal(2 * (1 + models), grid.RowCount);
            Assert.EndsWith(" refs", grid.RowLabels[0]);
            using var plain = grid.Compose();
            using var labelled = grid.Compose(labels: true);
            Assert.True(labelled.Width > plain.Width, "labels take a column on the left");
        }
        var console = new TestConsole().Width(220);
        var png = Path.Combine(run.Path, "grid-test.png");
        Assert.Equal(0, CliApp.Run(["runs", "grid", run.Path, "--split", "unseen", "--sets", "2", "--out", png], console));
        using var decoded = SkiaSharp.SKBitmap.Decode(png);
        Assert.NotNull(decoded);
        Assert.Contains("retrinet", console.Output);
        var missing = new TestConsole().Width(220);
        Assert.NotEqual(0, CliApp.Run(["runs", "grid", run.Path, "--split", "composition-x"], missing));
        Assert.Contains("no evaluation of split 'composition-x'", missing.Output);
        // The run's file paths are stored relative to the run folder, so it reads the same from any working folder.
        var stored = File.ReadAllText(Path.Combine(run.Path, ModelEvaluation.FileName));
        Assert.Contains("\"paths_relative\": true", stored);
        Assert.DoesNotContain(Path.GetFullPath(quickstart.Runs), stored);
    }

    [Fact]
    public void An_exported_base_given_back_as_checkpoint_reuses_the_models_trained_on_it()
    {
        var run = RunIndex.List(quickstart.Runs).Last().Path;
        using var temp = new TempDir();
        var exported = temp.File("base");
        var console = new TestConsole().Width(220);
        Assert.True(CliApp.Run(["runs", "export-base", run, "--out", exported], console) == 0, console.Output);
        Assert.Contains("base exported", console.Output);
        var record = PretrainedBase.ReadRecord(exported)!;
        Assert.Equal(RunIndex.List(quickstart.Runs).Last().Info.Id, record.Run!["id"]!.GetValue<string>());

        // Keyed by the base's content, not its path: every reference model and evaluation of the first run is reused.
        var again = new TestConsole().Width(220);
        Assert.True(CliApp.Run(["quickstart", "--quick", "--out", quickstart.Runs, "--set", $"base.checkpoint={exported}"], again) == 0, again.Output);
        var newest = RunIndex.List(quickstart.Runs).First().Path;
        var timings = System.Text.Json.JsonSerializer.Deserialize<List<StageTiming>>(File.ReadAllText(Path.Combine(newest, "timings.json")), RetriBooru.Data.WorkbenchJson.Lines)!;
        Assert.Contains(timings, t => t.Stage == $"base ({exported})");
        Assert.All(timings, t => Assert.True(t.Reused, $"{t.Stage} was recomputed"));
        Assert.True(File.Exists(Path.Combine(newest, ExperimentRunner.BasePretrainingFile)));

        // A spec that would have trained another base (here another seed) is refused before any training, in one line.
        var refused = new TestConsole().Width(400);
        Assert.NotEqual(0, CliApp.Run(["quickstart", "--quick", "--out", quickstart.Runs, "--set", $"base.checkpoint={exported}", "--set", "seed=5"], refused));
        Assert.Contains("is not the base this spec would train: it was trained with seed 1, the spec's is 5", refused.Output);
        Assert.Contains("--set base.checkpoint=null", refused.Output);
    }

    [Fact]
    public void Rerun_reuses_finished_stages()
    {
        var console = new TestConsole().Width(220);
        Assert.Equal(0, CliApp.Run(["quickstart", "--quick", "--out", quickstart.Runs], console));
        var newest = RunIndex.List(quickstart.Runs).First();
        var timings = System.Text.Json.JsonSerializer.Deserialize<List<StageTiming>>(File.ReadAllText(Path.Combine(newest.Path, "timings.json")), RetriBooru.Data.WorkbenchJson.Lines)!;
        Assert.All(timings, t => Assert.True(t.Reused, $"{t.Stage} was recomputed"));
        // Every evaluation was reused, so the evaluation suite (probe, baselines, embedders) was never created...
        Assert.DoesNotContain(timings, t => t.Stage == "evaluation-suite");
        // ...and the run still describes it, as the reused stages recorded it.
        var described = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(Path.Combine(newest.Path, "evaluation_suite.json")))!;
        Assert.StartsWith("not created: every evaluation stage was reused", described["suite_source"]);
        Assert.Contains("identity_baseline@32", described.Keys);
        // The first run created it and kept its real-image yardsticks in the dataset's evaluation cache.
        var firstRun = RunIndex.List(quickstart.Runs).Last();
        var created = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(Path.Combine(firstRun.Path, "evaluation_suite.json")))!;
        Assert.StartsWith("computed, saved to", created["cache_source/identity_baseline@32"]);
        Assert.True(RunIndex.List(quickstart.Runs).Count >= 2, "a rerun gets a new run folder");
    }

    [Fact]
    public void An_evaluation_reused_from_another_spec_carries_this_runs_sweep_point()
    {
        // The quickstart's settings as a one-value sweep (as the ablation's 0.1 point is the quickstart's RetriNet): every
        // stage is the fixture's, but the evaluations are labelled with this run's point, not the maker's "default".
        var run = RunResults.Load(RunQuickstartVariant("one-point", json => json["sweep"] = System.Text.Json.Nodes.JsonNode.Parse("""{"train.prompt_dropout": [0.1]}""")).Path);
        Assert.All(run.Timings, t => Assert.True(t.Reused, $"{t.Stage} was recomputed"));
        Assert.All(run.Evaluations, e => Assert.Equal("prompt_dropout=0.1", e.PointLabel));
    }

    [Fact]
    public void Reference_positions_retrain_RetriNet_alone()
    {
        var run = RunQuickstartVariant("positions", json => json["train"]!["reference_positions"] = true);
        var timings = System.Text.Json.JsonSerializer.Deserialize<List<StageTiming>>(File.ReadAllText(Path.Combine(run.Path, "timings.json")), RetriBooru.Data.WorkbenchJson.Lines)!;
        bool Reused(string stage) => timings.Single(t => t.Stage == stage).Reused;
        Assert.True(Reused("train-text-only-b-p0"), "text-only ignores reference positions and keeps its stage");
        Assert.True(Reused("evaluate-text-only-b-p0-seen"));
        Assert.False(Reused("train-retrinet-b-p0"));
        // The model (and its checkpoint) records the option, so loading it rebuilds the embeddings.
        var positioned = Directory.GetFiles(Path.Combine(quickstart.Runs, ".cache", "train"), "branch.json", SearchOption.AllDirectories)
            .Where(f => File.ReadAllText(f).Contains("\"position_embeddings\": true")).ToList();
        Assert.NotEmpty(positioned);
        Assert.All(positioned, f => Assert.Equal("retrinet", (string?)System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(f))!["kind"]));
    }

    [Fact]
    public void Changing_where_identity_is_compared_reevaluates_but_reuses_the_training()
    {
        // Same inputs as the fixture's quickstart except the suite's identity view: only the evaluations are recomputed.
        var run = RunQuickstartVariant("whole-view", json => json["evaluate"]!["identity_view"] = "whole");
        var timings = System.Text.Json.JsonSerializer.Deserialize<List<StageTiming>>(File.ReadAllText(Path.Combine(run.Path, "timings.json")), RetriBooru.Data.WorkbenchJson.Lines)!;
        Assert.All(timings.Where(t => t.Stage.StartsWith("train-", StringComparison.Ordinal) || t.Stage is "dataset" or "base"), t => Assert.True(t.Reused, $"{t.Stage} was recomputed"));
        Assert.All(timings.Where(t => t.Stage.StartsWith("evaluate-", StringComparison.Ordinal)), t => Assert.False(t.Reused, $"{t.Stage} was reused with another identity view"));
        Assert.Contains(timings, t => t.Stage.StartsWith("evaluate-", StringComparison.Ordinal));
    }

    [Fact]
    public void A_dataset_that_also_builds_scheme_a_shares_the_base_and_scheme_b_stages_by_content()
    {
        // The leakage study's layout: the quickstart's world built with schemes a and b is a new dataset stage, but its
        // records and scheme-b manifest are the fixture's, so the base, text-only, RetriNet-b and their evaluations are reused.
        var run = RunResults.Load(RunQuickstartVariant("with-scheme-a", json => json["schemes"] = System.Text.Json.Nodes.JsonNode.Parse("""["a", "b"]""")).Path);
        bool Reused(string stage) => run.Timings.Single(t => t.Stage == stage).Reused;
        Assert.False(Reused("dataset"), "the dataset with scheme a is another build");
        foreach (var stage in new[] { "base", "train-retrinet-b-p0", "train-text-only-b-p0", "evaluate-retrinet-b-p0-seen", "evaluate-text-only-b-p0-unseen" })
            Assert.True(Reused(stage), $"{stage} was recomputed");
        Assert.False(Reused("train-retrinet-a-p0"));
        Assert.False(Reused("evaluate-retrinet-a-p0-seen"));
        Assert.Contains(run.Evaluations, e => e.Model == "retrinet" && e.Scheme == "a" && e.Summary.ContainsKey("attribute_agreement"));
    }

    /// <summary>Runs the quickstart's spec, quick, changed by <paramref name="change"/> and named <paramref name="name"/>, on the fixture's cache.</summary>
    (string Path, RunInfo Info) RunQuickstartVariant(string name, Action<System.Text.Json.Nodes.JsonObject> change)
    {
        using var tmp = new TempDir();
        var specPath = tmp.File(name + ".json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(BuiltInSpecs.Quickstart)!.AsObject();
        json["name"] = name;
        change(json);
        File.WriteAllText(specPath, json.ToJsonString());
        var console = new TestConsole().Width(220);
        Assert.True(CliApp.Run(["run", specPath, "--quick", "--out", quickstart.Runs], console) == 0, console.Output);
        return RunIndex.List(quickstart.Runs).First(r => r.Info.Name == name);
    }

    [Fact]
    public void A_spec_with_a_typo_is_a_clear_usage_error()
    {
        using var tmp = new TempDir();
        var spec = tmp.File("bad.json");
        File.WriteAllText(spec, """{"name":"bad","train":{"steps":10,"prompt_dropot":0.2}}""");
        var console = new TestConsole().Width(220);
        Assert.NotEqual(0, CliApp.Run(["run", spec, "--out", tmp.File("runs")], console));
        Assert.Contains("prompt_dropot", console.Output);
        Assert.Contains("did you mean 'prompt_dropout'", console.Output);
        Assert.False(Directory.Exists(tmp.File("runs")), "nothing is written for an invalid spec");
        var log = System.Text.RegularExpressions.Regex.Match(console.Output, @"details: (\S+\.log)").Groups[1].Value;
        Assert.True(File.Exists(log), $"the error line must name a log file with the details:\n{console.Output}");
        Assert.Contains("SpecValidationException", File.ReadAllText(log));
    }

    [Fact]
    public void An_interrupted_run_resumes_its_training_from_the_checkpoint()
    {
        using var tmp = new TempDir();
        var spec = SpecLoader.Parse(BuiltInSpecs.Quickstart, "quickstart", quick: true) with { Name = "interrupt" };
        var options = new RunOptions { RunsRoot = tmp.File("runs"), Quick = true };
        using var cancel = new CancellationTokenSource();
        // Cancel in the middle of RetriNet's training.
        var progress = new SyncProgress<RunnerEvent>(e =>
        {
            if (e.Stage.StartsWith("train retrinet", StringComparison.Ordinal) && e.Fraction > 0.4) cancel.Cancel();
        });
        Assert.ThrowsAny<OperationCanceledException>(() => new ExperimentRunner(spec, options, progress).Run(cancel.Token));
        Assert.Equal("interrupted", RunIndex.List(options.RunsRoot).Single().Info.Status);
        var events = new List<RunnerEvent>();
        var result = new ExperimentRunner(spec, options, new SyncProgress<RunnerEvent>(events.Add)).Run();
        Assert.Equal("finished", result.Run.Info.Status);
        Assert.Contains(result.Timings, t => t.Stage == "dataset" && t.Reused);
        // The resumed training started after the interruption point, not at step 1.
        var first = events.First(e => e.Stage.StartsWith("train retrinet", StringComparison.Ordinal) && e.Message.StartsWith("step"));
        Assert.DoesNotContain("step 1/", first.Message);
    }
}

/// <summary>`runs grid` on a run read from elsewhere: the stored paths do not depend on the working folder of the run or of the reader.</summary>
public class RunsGridPathTests
{
    /// <summary>A run folder under ROOT/runs with one evaluated set whose reference and sample PNGs sit in ROOT/runs/.cache.</summary>
    static (RunFolder Run, ModelEvaluation Evaluation) CraftRun(string root)
    {
        var runs = Path.Combine(root, "runs");
        var reference = Path.Combine(runs, ".cache", "dataset", "k1", "crops", "a_face.png");
        var sample = Path.Combine(runs, ".cache", "evaluate", "k2", "samples", "a", "0.png");
        foreach (var (path, color) in new[] { (reference, SkiaSharp.SKColors.Red), (sample, SkiaSharp.SKColors.Blue) })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllBytes(path, DataTestFiles.Png(16, 16, color));
        }
        var run = RunFolder.Create(runs, "grid-paths", 1);
        run.WriteJson("spec.json", new ExperimentSpec { Name = "grid-paths" });
        var evaluation = new ModelEvaluation
        {
            Model = "retrinet", Split = "unseen", ResultsDir = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(sample)))!,
            Sets = [new EvaluatedSet("a", [reference], [sample])],
        };
        return (run, evaluation);
    }

    static (int Code, string Output) Grid(string runPath, string png)
    {
        var console = new TestConsole().Width(220);
        return (CliApp.Run(["runs", "grid", runPath, "--split", "unseen", "--out", png], console), console.Output);
    }

    [Fact]
    public void A_run_stores_paths_relative_to_its_folder_and_its_grid_works_after_the_runs_folder_moved()
    {
        using var tmp = new TempDir();
        var (run, evaluation) = CraftRun(tmp.File("first"));
        ModelEvaluation.Write(run, [evaluation]);
        var stored = File.ReadAllText(Path.Combine(run.Path, ModelEvaluation.FileName));
        Assert.DoesNotContain(tmp.Path, stored);
        Assert.Contains("../.cache/evaluate/k2/samples/a/0.png", stored);

        // Moved elsewhere (as a run is when read from another folder or machine): the paths still resolve.
        Directory.Move(tmp.File("first"), tmp.File("moved"));
        var movedRun = Path.Combine(tmp.File("moved"), "runs", Path.GetFileName(run.Path));
        var loaded = RunResults.Load(movedRun).Evaluations.Single();
        Assert.Equal(Path.Combine(tmp.File("moved"), "runs", ".cache", "evaluate", "k2", "samples", "a", "0.png"), loaded.Sets[0].Samples[0]);
        var (code, output) = Grid(movedRun, tmp.File("grid.png"));
        Assert.True(code == 0, output);
        Assert.True(File.Exists(tmp.File("grid.png")));
    }

    [Fact]
    public void An_older_run_with_paths_relative_to_where_it_was_started_still_reads_from_another_folder()
    {
        using var tmp = new TempDir();
        var root = tmp.File("project");
        var (run, evaluation) = CraftRun(root);
        // Older runs stored paths relative to the folder `retribooru run` was started in (here: ROOT), or absolute ones.
        string FromRoot(string path) => Path.GetRelativePath(root, path);
        var old = evaluation with
        {
            ResultsDir = FromRoot(evaluation.ResultsDir),
            Sets = [new EvaluatedSet("a", [evaluation.Sets[0].References[0]], [FromRoot(evaluation.Sets[0].Samples[0])])],
        };
        run.WriteJson(ModelEvaluation.FileName, new[] { old });
        Assert.DoesNotContain("paths_relative\": true", File.ReadAllText(Path.Combine(run.Path, ModelEvaluation.FileName)));
        Assert.NotEqual(Path.GetFullPath(root), Environment.CurrentDirectory);
        var (code, output) = Grid(run.Path, tmp.File("grid.png"));
        Assert.True(code == 0, output);
        Assert.Equal(evaluation.Sets[0].Samples[0], RunResults.Load(run.Path).Evaluations.Single().Sets[0].Samples[0]);
    }
}
