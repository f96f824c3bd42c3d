using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using RetriBooru.Data;
using RetriBooru.Runtime;
using RetriBooru.Settings;

namespace RetriBooru.Experiments;

/// <summary>A spec file that does not validate; the message lists every problem with its JSON path.</summary>
public sealed class SpecValidationException(string path, IReadOnlyList<string> problems)
    : Exception($"{path}: invalid experiment spec:\n  - {string.Join("\n  - ", problems)}")
{
    public IReadOnlyList<string> Problems { get; } = problems;
}

/// <summary>One point of a sweep: its index, the values it sets, and the resolved spec.</summary>
public sealed record SweepPoint(int Index, IReadOnlyDictionary<string, JsonElement> Values, ExperimentSpec Spec)
{
    public string Label => Values.Count == 0 ? "default" : string.Join(", ", Values.Select(kv => $"{kv.Key.Split('.')[^1]}={kv.Value}"));
}

/// <summary>
/// Reads and validates experiment specs: unknown fields (with a "did you mean" hint), wrong types,
/// out-of-range values and bad sweep paths are all reported at once, naming the file and the JSON path.
/// </summary>
public static class SpecLoader
{
    public static ExperimentSpec Load(string path, bool quick = false, IReadOnlyList<string>? overrides = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such experiment spec", path);
        return Parse(RegularFile.ReadAllText(path, "experiment spec"), path, quick, overrides);
    }

    /// <summary>
    /// Parses and validates a spec. <paramref name="overrides"/> are `PATH=VALUE` settings (the CLI's `--set`, e.g.
    /// `seed=2`, `dataset.seed=8`), applied after the quick overrides; VALUE is JSON, or a plain word taken as a string.
    /// </summary>
    public static ExperimentSpec Parse(string json, string pathForErrors, bool quick = false, IReadOnlyList<string>? overrides = null)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new SpecValidationException(pathForErrors, [$"not valid JSON: {e.Message}"]); }
        if (root is not JsonObject obj) throw new SpecValidationException(pathForErrors, ["the top level must be a JSON object"]);

        var problems = new List<string>();
        CheckShape(obj, typeof(ExperimentSpec), "$", problems);
        if (problems.Count > 0) throw new SpecValidationException(pathForErrors, problems);

        if (quick && obj["quick"] is JsonObject quickOverrides)
            foreach (var (dotted, value) in quickOverrides)
                if (!TrySet(obj, dotted, value?.DeepClone(), out var error)) problems.Add($"$.quick.{dotted}: {error}");
        foreach (var setting in overrides ?? [])
        {
            if (ParseOverride(setting) is not var (dotted, value)) { problems.Add($"--set {setting}: expected PATH=VALUE, e.g. seed=2 or dataset.seed=8"); continue; }
            if (!TrySet(obj, dotted, value, out var error)) problems.Add($"--set {setting}: {error}");
        }
        if (problems.Count > 0) throw new SpecValidationException(pathForErrors, problems);
        // Overrides may have put a wrong type anywhere: the same shape check as the file's own fields.
        CheckShape(obj, typeof(ExperimentSpec), "$", problems);
        if (problems.Count > 0) throw new SpecValidationException(pathForErrors, problems);

        ExperimentSpec spec;
        try { spec = obj.Deserialize<ExperimentSpec>(WorkbenchJson.Lines)!; }
        catch (JsonException e) { throw new SpecValidationException(pathForErrors, [$"{e.Path}: {e.Message}"]); }

        CheckValues(spec, problems);
        // Counted before anything is expanded: six axes of ten values are a 300-byte spec and a million points.
        if (SweepPointCount(spec) is var count and > SizeLimits.MaxSweepPoints)
            problems.Add($"$.sweep: {string.Join(" x ", spec.Sweep.Values.Select(v => v.Count))} = {count:N0} points, more than the {SizeLimits.MaxSweepPoints:N0} one run may hold; cut values or split the sweep into several specs");
        foreach (var (axis, values) in spec.Sweep)
        {
            if (values.Count == 0) problems.Add($"$.sweep.{axis}: an axis needs at least one value");
            var probe = (JsonObject)obj.DeepClone();
            foreach (var v in values)
                if (!TrySet(probe, axis, JsonNode.Parse(v.GetRawText()), out var error)) { problems.Add($"$.sweep.{axis}: {error}"); break; }
        }
        if (problems.Count > 0) throw new SpecValidationException(pathForErrors, problems);
        return spec;
    }

    /// <summary>The cartesian product of the sweep axes (one point when there is no sweep), each a fully resolved spec.</summary>
    /// <summary>Points of the sweep's cartesian product, as a double (no overflow, however many axes).</summary>
    public static double SweepPointCount(ExperimentSpec spec) => spec.Sweep.Values.Aggregate(1.0, (product, axis) => product * axis.Count);

    public static IReadOnlyList<SweepPoint> Expand(ExperimentSpec spec)
    {
        if (SweepPointCount(spec) > SizeLimits.MaxSweepPoints)
            throw new InvalidOperationException($"the sweep has {SweepPointCount(spec):N0} points, more than {SizeLimits.MaxSweepPoints:N0}; it is not expanded");
        var baseNode = JsonSerializer.SerializeToNode(spec, WorkbenchJson.Lines)!.AsObject();
        var axes = spec.Sweep.ToList();
        var points = new List<SweepPoint>();
        var combination = new int[axes.Count];
        while (true)
        {
            var node = (JsonObject)baseNode.DeepClone();
            var values = new Dictionary<string, JsonElement>();
            for (int a = 0; a < axes.Count; a++)
            {
                var value = axes[a].Value[combination[a]];
                values[axes[a].Key] = value;
                if (!TrySet(node, axes[a].Key, JsonNode.Parse(value.GetRawText()), out var error))
                    throw new InvalidOperationException($"sweep axis {axes[a].Key}: {error}");
            }
            points.Add(new SweepPoint(points.Count, values, node.Deserialize<ExperimentSpec>(WorkbenchJson.Lines)! with { Sweep = new Dictionary<string, IReadOnlyList<JsonElement>>() }));
            int i = axes.Count - 1;
            while (i >= 0 && ++combination[i] == axes[i].Value.Count) combination[i--] = 0;
            if (i < 0) break;
        }
        return points;
    }

    /// <summary>
    /// The spec with each sweep axis cut to at most <paramref name="maxValues"/> values, spread over the axis
    /// (first and last kept): smoke runs of a sweep in notebooks and tests.
    /// </summary>
    public static ExperimentSpec LimitSweep(ExperimentSpec spec, int maxValues)
    {
        if (maxValues < 1) throw new ArgumentOutOfRangeException(nameof(maxValues), maxValues, "keep at least one value per axis");
        var limited = spec.Sweep.ToDictionary(kv => kv.Key, kv =>
        {
            var values = kv.Value;
            if (values.Count <= maxValues) return values;
            if (maxValues == 1) return (IReadOnlyList<JsonElement>)[values[0]];
            return Enumerable.Range(0, maxValues).Select(i => values[(int)Math.Round(i * (values.Count - 1.0) / (maxValues - 1))]).ToList();
        });
        return spec with { Sweep = limited };
    }

    static void CheckValues(ExperimentSpec s, List<string> problems)
    {
        if (string.IsNullOrWhiteSpace(s.Name)) problems.Add("$.name: required");
        // The settings records check their own fields (ranges declared on each field, shared with the CLI).
        problems.AddRange(s.Dataset.Problems(f => "$.dataset." + f.JsonName));
        problems.AddRange(s.Base.Problems(f => "$.base." + f.JsonName));
        problems.AddRange(s.Train.Problems(f => "$.train." + f.JsonName));
        problems.AddRange(s.Evaluate.Problems(f => "$.evaluate." + f.JsonName));
    }

    /// <summary>Fields an older spec may still hold, with what replaced them.</summary>
    static readonly Dictionary<string, string> Replaced = new()
    {
        ["$.dataset.unseen_characters"] = "replaced by unseen_fraction, the share of characters held out (4 of 16 = 0.25)",
    };

    /// <summary>Walks the JSON against the record's properties: unknown names and wrong JSON kinds are problems.</summary>
    static void CheckShape(JsonObject obj, Type type, string path, List<string> problems)
    {
        var properties = type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Name: p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name, Property: p))
            .Where(p => p.Name is not null)
            .ToDictionary(p => p.Name!, p => p.Property);
        foreach (var (name, value) in obj)
        {
            if (!properties.TryGetValue(name, out var property))
            {
                problems.Add(Replaced.TryGetValue($"{path}.{name}", out var replacement)
                    ? $"{path}.{name}: {replacement}" : $"{path}.{name}: unknown field{Hint(name, properties.Keys)}");
                continue;
            }
            var t = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            string childPath = $"{path}.{name}";
            if (value is null) continue;
            if (t == typeof(string)) { if (value.GetValueKind() != JsonValueKind.String) problems.Add($"{childPath}: expected a string"); }
            else if (Words.NamesOf(t) is { } words) CheckWord(value, t, words, childPath, problems);
            else if (t == typeof(bool)) { if (value.GetValueKind() is not (JsonValueKind.True or JsonValueKind.False)) problems.Add($"{childPath}: expected true or false"); }
            else if (t == typeof(int) || t == typeof(long))
            {
                if (value.GetValueKind() != JsonValueKind.Number || !long.TryParse(value.ToJsonString(), out _)) problems.Add($"{childPath}: expected a whole number");
            }
            else if (t == typeof(double)) { if (value.GetValueKind() != JsonValueKind.Number) problems.Add($"{childPath}: expected a number"); }
            else if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IReadOnlyList<>))
            {
                if (value is not JsonArray list) { problems.Add($"{childPath}: expected a list"); continue; }
                var itemType = t.GetGenericArguments()[0];
                if (Words.NamesOf(itemType) is { } itemWords)
                    for (int i = 0; i < list.Count; i++) CheckWord(list[i], itemType, itemWords, $"{childPath}[{i}]", problems);
            }
            else if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IReadOnlyDictionary<,>))
            {
                if (value is not JsonObject dict) { problems.Add($"{childPath}: expected an object"); continue; }
                var valueType = t.GetGenericArguments()[1];
                bool wantsList = valueType.IsGenericType && valueType.GetGenericTypeDefinition() == typeof(IReadOnlyList<>);
                foreach (var (key, item) in dict)
                {
                    if (!PathExists(key)) problems.Add($"{childPath}.{key}: '{key}' is not a field of the spec{Hint(key, AllPaths())}");
                    if (wantsList && item is not JsonArray) problems.Add($"{childPath}.{key}: expected a list of values");
                }
            }
            else if (value is JsonObject child) CheckShape(child, t, childPath, problems);
            else problems.Add($"{childPath}: expected an object");
        }
    }

    /// <summary>A domain word (model kind, scheme, split, view, ...) must be one of its spellings.</summary>
    static void CheckWord(JsonNode? value, Type type, IReadOnlyList<string> words, string path, List<string> problems)
    {
        if (value is null || value.GetValueKind() != JsonValueKind.String) { problems.Add($"{path}: expected one of {string.Join(", ", words)}"); return; }
        var text = value.GetValue<string>();
        if (!words.Contains(text)) problems.Add($"{path}: {Words.Unknown(type, text)}");
    }

    /// <summary>`PATH=VALUE` -> (PATH, VALUE as JSON; a value that is not JSON is a string). Null when there is no PATH.</summary>
    static (string Path, JsonNode? Value)? ParseOverride(string setting)
    {
        int equals = setting.IndexOf('=');
        if (equals <= 0) return null;
        var path = setting[..equals].Trim();
        var text = setting[(equals + 1)..].Trim();
        if (path.Length == 0) return null;
        JsonNode? value;
        try { value = JsonNode.Parse(text); }
        catch (JsonException) { value = JsonValue.Create(text); }
        return (path, value);
    }

    static bool TrySet(JsonObject root, string dotted, JsonNode? value, out string error)
    {
        if (!PathExists(dotted)) { error = $"'{dotted}' is not a field of the spec{Hint(dotted, AllPaths())}"; return false; }
        var parts = dotted.Split('.');
        JsonObject current = root;
        foreach (var part in parts[..^1])
        {
            if (current[part] is not JsonObject next) { next = new JsonObject(); current[part] = next; }
            current = next;
        }
        current[parts[^1]] = value;
        error = "";
        return true;
    }

    static IEnumerable<string> AllPaths(Type? type = null, string prefix = "")
    {
        type ??= typeof(ExperimentSpec);
        foreach (var p in type.GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var name = p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name;
            if (name is null || name is "sweep" or "quick") continue;
            var path = prefix + name;
            yield return path;
            var t = p.PropertyType;
            if (t.IsClass && t != typeof(string) && !t.IsGenericType && t.Assembly == typeof(ExperimentSpec).Assembly)
                foreach (var child in AllPaths(t, path + ".")) yield return child;
        }
    }

    static bool PathExists(string dotted) => AllPaths().Contains(dotted);

    static string Hint(string name, IEnumerable<string> known) => Runtime.DidYouMean.Hint(name, known);
}
