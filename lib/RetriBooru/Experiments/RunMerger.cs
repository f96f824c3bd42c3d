using System.Text.Json;
using RetriBooru.Data;

namespace RetriBooru.Experiments;

/// <summary>A finished run read back from its folder (spec, evaluations, timings): notebooks load earlier runs with it.</summary>
public sealed record RunResults(RunFolder Run, ExperimentSpec Spec, IReadOnlyList<ModelEvaluation> Evaluations, IReadOnlyList<StageTiming> Timings)
{
    public static RunResults Load(string runFolder)
    {
        var run = RunFolder.Open(runFolder);
        string Required(string name)
        {
            var path = Path.Combine(run.Path, name);
            if (!File.Exists(path)) throw new FileNotFoundException($"{run.Path}: no {name} (run status: {run.Info.Status})", path);
            return path;
        }
        string Read(string name) => File.ReadAllText(Required(name));
        var spec = JsonSerializer.Deserialize<ExperimentSpec>(Read("spec.json"), WorkbenchJson.Lines)!;
        Required(ModelEvaluation.FileName);
        var evaluations = ModelEvaluation.Read(run.Path);
        var timings = File.Exists(Path.Combine(run.Path, "timings.json"))
            ? JsonSerializer.Deserialize<List<StageTiming>>(Read("timings.json"), WorkbenchJson.Lines)! : [];
        return new RunResults(run, spec, evaluations, timings);
    }

    /// <summary>The newest finished run of a spec under a runs folder, or null.</summary>
    public static RunResults? Latest(string runsRoot, string specName) =>
        RunIndex.List(runsRoot).Where(r => r.Info.Name == specName && r.Info.Status == "finished")
            .Select(r => Load(r.Path)).FirstOrDefault();
}

/// <summary>
/// Merges run folders of the same spec (one per sweep point, e.g. from a Slurm job array calling
/// `retribooru run SPEC --only-point K`) into a new run folder with the union of their evaluations and one report.
/// </summary>
public static class RunMerger
{
    public static ExperimentResult Merge(IReadOnlyList<string> runFolders, string runsRoot)
    {
        if (runFolders.Count == 0) throw new ArgumentException("give at least one run folder to merge");
        var runs = runFolders.Select(RunFolder.Open).ToList();
        ExperimentSpec? spec = null;
        var evaluations = new List<ModelEvaluation>();
        var timings = new List<StageTiming>();
        foreach (var run in runs)
        {
            var specPath = Path.Combine(run.Path, "spec.json");
            var evalPath = Path.Combine(run.Path, ModelEvaluation.FileName);
            if (!File.Exists(evalPath)) throw new FileNotFoundException($"{run.Path}: no evaluations.json (did the run finish? status: {run.Info.Status})", evalPath);
            var thisSpec = JsonSerializer.Deserialize<ExperimentSpec>(File.ReadAllText(specPath), WorkbenchJson.Lines)!;
            if (spec is not null && thisSpec.Name != spec.Name) throw new InvalidDataException($"{run.Path}: spec '{thisSpec.Name}' differs from '{spec.Name}'; only runs of one spec can be merged");
            spec ??= thisSpec;
            evaluations.AddRange(ModelEvaluation.Read(run.Path));
            var timingPath = Path.Combine(run.Path, "timings.json");
            if (File.Exists(timingPath))
                timings.AddRange(JsonSerializer.Deserialize<List<StageTiming>>(File.ReadAllText(timingPath), WorkbenchJson.Lines)!.Select(t => t with { Stage = $"{run.Info.Id}/{t.Stage}" }));
        }
        // A point evaluated twice (rerun jobs) counts once: the last run wins.
        var unique = evaluations.GroupBy(e => (e.Point, e.Model, e.Scheme, e.Split)).Select(g => g.Last())
            .OrderBy(e => e.Point).ThenBy(e => e.Model, StringComparer.Ordinal).ThenBy(e => e.Scheme, StringComparer.Ordinal).ThenBy(e => e.Split, StringComparer.Ordinal).ToList();
        var merged = RunFolder.Create(runsRoot, spec!.Name + "-merged", spec.Seed, "merge", points: unique.Select(e => e.Point).Distinct().ToList(),
            provenance: runs[0].Info.Provenance);
        merged.WriteJson("spec.json", spec);
        merged.WriteJson("merged_from.json", runs.Select(r => r.Path));
        ModelEvaluation.Write(merged, unique);
        merged.WriteJson("timings.json", timings);
        ExperimentRunner.WriteSummaryCsv(merged, unique);
        var report = merged.File("report.html");
        ReportBuilder.Build(spec, merged, unique, timings).Save(report);
        merged.Finish("finished", ExperimentRunner.Headline(unique));
        return new ExperimentResult(merged, timings, unique, report);
    }
}
