using System.Text.Json;
using RetriBooru.Data;

namespace RetriBooru.Experiments;

/// <summary>A study has no finished run that matches its spec: the message says how to produce one.</summary>
public sealed class StudyNotRunException(string message) : Exception(message);

/// <summary>
/// Finds a study's finished run for the notebooks: they show a study's results from its run instead of training for tens of
/// minutes inside a kernel, and say how to produce the run when there is none.
/// </summary>
public static class StudyRuns
{
    /// <summary>
    /// The newest finished full-size run under <paramref name="runsRoot"/> whose recorded spec equals
    /// <paramref name="spec"/> (a run of an older version of the spec file is not these results), or
    /// <see cref="StudyNotRunException"/> naming the command that produces it.
    /// </summary>
    public static RunResults Finished(string runsRoot, ExperimentSpec spec, string specFile, string duration)
    {
        var wanted = JsonSerializer.Serialize(spec, WorkbenchJson.Lines);
        var candidates = RunIndex.List(runsRoot).Where(r => r.Info.Name == spec.Name && r.Info.Kind == "experiment").ToList();
        var stale = new List<string>();
        foreach (var (path, info) in candidates)
        {
            if (info.Status != "finished" || info.Quick || info.Points is { } points && points.Count != SpecLoader.Expand(spec).Count) continue;
            var results = RunResults.Load(path);
            if (JsonSerializer.Serialize(results.Spec, WorkbenchJson.Lines) == wanted) return results;
            stale.Add(info.Id);
        }
        var found = candidates.Count == 0 ? $"no run of '{spec.Name}' under {Path.GetFullPath(runsRoot)}"
            : stale.Count > 0 ? $"the finished runs of '{spec.Name}' under {Path.GetFullPath(runsRoot)} ({string.Join(", ", stale)}) were made with another version of {specFile} or other --set overrides"
            : $"no finished full-size run of '{spec.Name}' under {Path.GetFullPath(runsRoot)} (an interrupted one resumes when rerun)";
        throw new StudyNotRunException($"{found}. Produce it ({duration} on 2 cores) with `dotnet run --project lib/RetriBooru.Cli -c Release -- run {specFile} --out {runsRoot}` from the repository root, then rerun this cell; or set RETRIBOORU_SMOKE=1 for the smoke-size version.");
    }
}
