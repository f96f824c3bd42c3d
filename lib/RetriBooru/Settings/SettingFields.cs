using System.Globalization;
using System.Reflection;
using System.Text.Json.Serialization;

namespace RetriBooru.Settings;

/// <summary>One field of a settings record: its property, JSON name, CLI flag and help.</summary>
public sealed record SettingField(PropertyInfo Property, string JsonName, SettingAttribute Setting)
{
    /// <summary>The command-line flag: the JSON name in kebab case (<c>prompt_dropout</c> -> <c>--prompt-dropout</c>).</summary>
    public string Flag => "--" + JsonName.Replace('_', '-');
    public string Help => Setting.Help;
    /// <summary>The field's type without Nullable (int for int?).</summary>
    public Type ValueType => Nullable.GetUnderlyingType(Property.PropertyType) ?? Property.PropertyType;
}

/// <summary>Reads settings records by reflection: their fields, defaults and range checks, shared by the spec loader and the CLI.</summary>
public static class SettingFields
{
    public static IReadOnlyList<SettingField> Of(Type record) =>
        record.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (p, setting: p.GetCustomAttribute<SettingAttribute>(), json: p.GetCustomAttribute<JsonPropertyNameAttribute>()))
            .Where(x => x.setting is not null)
            .Select(x => new SettingField(x.p, x.json?.Name ?? throw new InvalidOperationException($"{record.Name}.{x.p.Name}: a setting needs a JsonPropertyName"), x.setting!))
            .ToList();

    /// <summary>The field of <paramref name="record"/> named <paramref name="property"/>.</summary>
    public static SettingField Field(Type record, string property) =>
        Of(record).SingleOrDefault(f => f.Property.Name == property) ?? throw new ArgumentException($"{record.Name}.{property} is not a setting");

    /// <summary>The record's default value of a field (from a fresh instance).</summary>
    public static object? Default(Type record, string property) => record.GetProperty(property)!.GetValue(Activator.CreateInstance(record));

    /// <summary>
    /// Every numeric field outside its declared range, as "LABEL: VALUE is outside [MIN, MAX]" where LABEL is
    /// <paramref name="label"/> of the field (a spec path or a CLI flag).
    /// </summary>
    public static IReadOnlyList<string> RangeProblems(object record, Func<SettingField, string> label)
    {
        var problems = new List<string>();
        foreach (var field in Of(record.GetType()))
        {
            if (field.Property.GetValue(record) is not { } value) continue;
            if (value is not (int or long or double)) continue;
            double v = Convert.ToDouble(value, CultureInfo.InvariantCulture);
            var (lo, hi) = (field.Setting.Min, field.Setting.Max);
            if (v < lo || v > hi || double.IsNaN(v))
                problems.Add(FormattableString.Invariant($"{label(field)}: {value} is outside [{lo}, {hi}]"));
        }
        return problems;
    }

    /// <summary>Throws one ArgumentException naming every field out of range (by CLI flag).</summary>
    public static void ThrowIfOutOfRange(object record)
    {
        var problems = RangeProblems(record, f => f.Flag);
        if (problems.Count > 0) throw new ArgumentOutOfRangeException(null, string.Join("; ", problems));
    }
}
