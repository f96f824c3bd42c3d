using RetriBooru.Runtime;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RetriBooru.Metrics;

/// <summary>
/// One scored unit: a generated sample (SampleIndex set) or a whole reference set (SampleIndex null, for set-level
/// scores such as SWD). Scores missing from <see cref="Scores"/> are undefined for that unit (e.g. a prompt that names
/// no probe attribute) and are left out of the summary, not counted as zero.
/// </summary>
public sealed record ResultRow(string Model, string Split, string ReferenceSetId, int? SampleIndex, long? Seed, string? ImagePath, IReadOnlyDictionary<string, double> Scores);

/// <summary>
/// The evaluation results table: per-sample and per-set rows plus one summary row per (model, split) holding each
/// score's mean and 95% bootstrap CI over reference sets (<see cref="Bootstrap.ClusteredMeanInterval"/>), written as
/// CSV and JSON with the run's config and git commit. Scores of a whole sample set (KID) join the summary row as given (<see cref="AddAggregate"/>).
/// Output bytes depend only on the rows, aggregates, config, commit and bootstrap seed (no timestamps).
/// </summary>
public sealed class ResultsTable(long bootstrapSeed = 0, int resamples = Bootstrap.DefaultResamples)
{
    readonly List<ResultRow> _rows = [];
    readonly List<(string Model, string Split, ScoreSummary Summary)> _aggregates = [];

    public IReadOnlyList<ResultRow> Rows => _rows;

    public void Add(ResultRow row)
    {
        foreach (var (name, value) in row.Scores)
            if (!double.IsFinite(value)) throw new ArgumentException($"score '{name}' of {row.Model}/{row.Split}/{row.ReferenceSetId}/{row.SampleIndex} is {value}; leave undefined scores out instead");
        _rows.Add(row);
    }

    /// <summary>
    /// A score that belongs to the (model, split) sample set as a whole and has no per-row values (KID compares two
    /// distributions; readability divides by a real-image mean): it goes into that summary row unchanged.
    /// </summary>
    public void AddAggregate(string model, string split, ScoreSummary summary)
    {
        foreach (var (name, value) in new[] { ("mean", summary.Mean), ("lower", summary.Lower), ("upper", summary.Upper) })
            if (!double.IsFinite(value)) throw new ArgumentException($"aggregate score '{summary.Name}' of {model}/{split}: {name} is {value}; leave undefined scores out instead");
        if (_aggregates.Any(a => a.Model == model && a.Split == split && a.Summary.Name == summary.Name))
            throw new ArgumentException($"aggregate score '{summary.Name}' of {model}/{split} was already added");
        if (_rows.Any(r => r.Model == model && r.Split == split && r.Scores.ContainsKey(summary.Name)))
            throw new ArgumentException($"score '{summary.Name}' of {model}/{split} has row values; an aggregate cannot share its name");
        _aggregates.Add((model, split, summary));
    }

    public IReadOnlyList<string> ScoreNames => _rows.SelectMany(r => r.Scores.Keys).Concat(_aggregates.Select(a => a.Summary.Name))
        .Distinct().OrderBy(n => n, StringComparer.Ordinal).ToList();

    /// <summary>(model, split) -> one <see cref="ScoreSummary"/> per score defined on at least one row.</summary>
    public IReadOnlyList<(string Model, string Split, IReadOnlyList<ScoreSummary> Scores)> Summaries()
    {
        var result = new List<(string, string, IReadOnlyList<ScoreSummary>)>();
        var keys = _rows.Select(r => (r.Model, r.Split)).Concat(_aggregates.Select(a => (a.Model, a.Split))).Distinct()
            .OrderBy(k => k.Model, StringComparer.Ordinal).ThenBy(k => k.Split, StringComparer.Ordinal);
        foreach (var (model, split) in keys)
        {
            var group = _rows.Where(r => r.Model == model && r.Split == split).ToList();
            var summaries = new List<ScoreSummary>();
            foreach (var name in ScoreNames)
            {
                var scored = group.Where(r => r.Scores.ContainsKey(name)).ToList();
                // Samples of one reference set are not independent: the interval resamples reference sets.
                if (scored.Count > 0) summaries.Add(Bootstrap.ClusteredMeanInterval(name, scored.Select(r => r.Scores[name]).ToList(),
                    scored.Select(r => r.ReferenceSetId).ToList(), bootstrapSeed, resamples));
                else if (_aggregates.FirstOrDefault(a => a.Model == model && a.Split == split && a.Summary.Name == name) is { Summary: { } aggregate }) summaries.Add(aggregate);
            }
            result.Add((model, split, summaries));
        }
        return result;
    }

    /// <summary>Writes DIR/results.csv and DIR/results.json atomically; returns their paths.</summary>
    /// <param name="quality">The image-quality details (KID with its floor and ceiling, readability), a top-level <c>quality</c> object of the JSON.</param>
    public (string Csv, string Json) Write(string directory, JsonObject config, string? gitCommit, JsonObject? quality = null)
    {
        Directory.CreateDirectory(directory);
        var summaries = Summaries();
        var csvPath = Path.Combine(directory, "results.csv");
        var jsonPath = Path.Combine(directory, "results.json");
        AtomicFile.WriteAllText(csvPath, ToCsv(summaries));
        AtomicFile.WriteAllText(jsonPath, ToJson(summaries, config, gitCommit, quality).ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        return (csvPath, jsonPath);
    }

    string ToCsv(IReadOnlyList<(string Model, string Split, IReadOnlyList<ScoreSummary> Scores)> summaries)
    {
        var names = ScoreNames;
        var sb = new StringBuilder();
        var header = new List<string> { "row_type", "model", "split", "reference_set", "sample", "seed", "image" };
        foreach (var n in names) header.AddRange([n, n + "_ci_low", n + "_ci_high", n + "_n"]);
        sb.Append(string.Join(',', header.Select(Csv))).Append('\n');
        foreach (var r in _rows)
        {
            var cells = new List<string> { r.SampleIndex is null ? "set" : "sample", r.Model, r.Split, r.ReferenceSetId, Int(r.SampleIndex), Int(r.Seed), r.ImagePath ?? "" };
            foreach (var n in names) cells.AddRange([r.Scores.TryGetValue(n, out var v) ? Num(v) : "", "", "", ""]);
            sb.Append(string.Join(',', cells.Select(Csv))).Append('\n');
        }
        foreach (var (model, split, scores) in summaries)
        {
            var cells = new List<string> { "summary", model, split, "", "", "", "" };
            foreach (var n in names)
            {
                var s = scores.FirstOrDefault(x => x.Name == n);
                cells.AddRange(s is null ? ["", "", "", "0"] : [Num(s.Mean), Num(s.Lower), Num(s.Upper), s.Count.ToString(CultureInfo.InvariantCulture)]);
            }
            sb.Append(string.Join(',', cells.Select(Csv))).Append('\n');
        }
        return sb.ToString();
    }

    JsonObject ToJson(IReadOnlyList<(string Model, string Split, IReadOnlyList<ScoreSummary> Scores)> summaries, JsonObject config, string? gitCommit, JsonObject? quality)
    {
        var rows = new JsonArray();
        foreach (var r in _rows)
        {
            var scores = new JsonObject();
            foreach (var (k, v) in r.Scores.OrderBy(kv => kv.Key, StringComparer.Ordinal)) scores[k] = v;
            rows.Add(new JsonObject
            {
                ["row_type"] = r.SampleIndex is null ? "set" : "sample", ["model"] = r.Model, ["split"] = r.Split, ["reference_set"] = r.ReferenceSetId,
                ["sample"] = r.SampleIndex, ["seed"] = r.Seed, ["image"] = r.ImagePath, ["scores"] = scores,
            });
        }
        var summaryArray = new JsonArray();
        foreach (var (model, split, scores) in summaries)
        {
            var byName = new JsonObject();
            foreach (var s in scores)
                byName[s.Name] = new JsonObject { ["mean"] = s.Mean, ["ci_low"] = s.Lower, ["ci_high"] = s.Upper, ["n"] = s.Count, ["level"] = s.Level };
            summaryArray.Add(new JsonObject { ["row_type"] = "summary", ["model"] = model, ["split"] = split, ["scores"] = byName });
        }
        var json = new JsonObject
        {
            ["git_commit"] = gitCommit,
            ["config"] = config.DeepClone(),
            // What an interval resamples, so a results file says which rule its intervals follow (protocol 5).
            ["bootstrap"] = new JsonObject { ["seed"] = bootstrapSeed, ["resamples"] = resamples, ["level"] = 0.95, ["resampled_unit"] = "reference_set" },
        };
        if (quality is not null) json["quality"] = quality.DeepClone();
        json["rows"] = rows;
        json["summaries"] = summaryArray;
        return json;
    }

    static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);
    static string Int(long? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "";
    static string Int(int? v) => v?.ToString(CultureInfo.InvariantCulture) ?? "";

    static string Csv(string cell) =>
        cell.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + cell.Replace("\"", "\"\"") + "\"" : cell;
}

/// <summary>The git commit a result was produced from (recorded with every results table).</summary>
public static class GitCommit
{
    /// <summary>"&lt;sha&gt;" or "&lt;sha&gt;-dirty"; null when the folder is not in a git work tree or git is missing.</summary>
    public static string? Describe(string? directory = null)
    {
        var dir = directory ?? Environment.CurrentDirectory;
        var sha = Run(dir, "rev-parse HEAD")?.Trim();
        if (string.IsNullOrEmpty(sha)) return null;
        var status = Run(dir, "status --porcelain --untracked-files=no");
        return string.IsNullOrWhiteSpace(status) ? sha : sha + "-dirty";
    }

    static string? Run(string directory, string arguments)
    {
        try
        {
            var info = new ProcessStartInfo("git", arguments) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var process = Process.Start(info);
            if (process is null) return null;
            var output = process.StandardOutput.ReadToEnd();
            process.StandardError.ReadToEnd();
            if (!process.WaitForExit(10_000)) { process.Kill(); return null; }
            return process.ExitCode == 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }
}
