using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using System.Text.Json.Serialization;
using RetriBooru.Runtime;

namespace RetriBooru.Settings;

/// <summary>What a domain word is called in messages (<c>model</c>, <c>scheme</c>, ...) and which values it takes.</summary>
[AttributeUsage(AttributeTargets.Enum)]
public sealed class WordAttribute(string noun, string choices) : Attribute
{
    public string Noun => noun;
    public string Choices => choices;
}

/// <summary>
/// Domain words (model kind, scheme, split, prompt view, ...) as enums, spelled as in specs and on the command line
/// (<c>text-only</c>, <c>a</c>). Parsed once at the boundary, with a did-you-mean for typos.
/// </summary>
public static class Words
{
    /// <summary>The spelling of a value (its JSON name).</summary>
    public static string Name<T>(this T value) where T : struct, Enum => Spellings<T>.ByValue[value];

    /// <summary>Every spelling, in declaration order.</summary>
    public static IReadOnlyList<string> All<T>() where T : struct, Enum => Spellings<T>.Names;

    public static bool TryParse<T>(string? text, out T value) where T : struct, Enum => Spellings<T>.ByName.TryGetValue(text ?? "", out value);

    /// <summary>The value spelled <paramref name="text"/>, or an ArgumentException "unknown model 'x' (did you mean 'y'?); use ...".</summary>
    public static T Parse<T>(string? text) where T : struct, Enum =>
        TryParse<T>(text, out var value) ? value : throw new ArgumentException(Unknown<T>(text ?? ""));

    /// <summary>"unknown model 'retrinett' (did you mean 'retrinet'?); use retrinet, controlnet, ipadapter or text-only".</summary>
    public static string Unknown<T>(string text) where T : struct, Enum => Unknown(typeof(T), text);

    /// <summary>The same message for a domain-word type known only at run time (the spec loader's walk).</summary>
    public static string Unknown(Type type, string text)
    {
        var word = type.GetCustomAttribute<WordAttribute>();
        var names = NamesOf(type) ?? [];
        string noun = word?.Noun ?? type.Name;
        string choices = word?.Choices ?? string.Join(", ", names);
        return $"unknown {noun} '{text}'{DidYouMean.Hint(text, names)}; use {choices}";
    }

    /// <summary>The value of a domain-word type known only at run time spelled <paramref name="text"/>, or the ArgumentException of <see cref="Parse{T}"/>.</summary>
    public static object Parse(Type type, string text)
    {
        foreach (var value in Enum.GetValues(type))
            if (SpellingOf(type, value!) == text) return value!;
        throw new ArgumentException(Unknown(type, text));
    }

    /// <summary>The spellings of a domain-word enum type, or null when the type is not one.</summary>
    public static IReadOnlyList<string>? NamesOf(Type type) =>
        type.IsEnum && type.GetCustomAttribute<WordAttribute>() is not null
            ? Enum.GetValues(type).Cast<object>().Select(v => SpellingOf(type, v)).ToList() : null;

    static string SpellingOf(Type type, object value) =>
        type.GetField(value.ToString()!)!.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name ?? value.ToString()!;

    static class Spellings<T> where T : struct, Enum
    {
        public static readonly IReadOnlyList<string> Names = Enum.GetValues<T>().Select(v => SpellingOf(typeof(T), v)).ToList();
        public static readonly Dictionary<T, string> ByValue = Enum.GetValues<T>().ToDictionary(v => v, v => SpellingOf(typeof(T), v));
        public static readonly Dictionary<string, T> ByName = ByValue.ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);
    }
}

/// <summary>Lets the command line parse a domain word by its spelling, with the did-you-mean message.</summary>
public sealed class WordConverter<T> : TypeConverter where T : struct, Enum
{
    public override bool CanConvertFrom(ITypeDescriptorContext? context, Type sourceType) => sourceType == typeof(string);

    public override object? ConvertFrom(ITypeDescriptorContext? context, CultureInfo? culture, object value) => Words.Parse<T>((string)value);

    public override object? ConvertTo(ITypeDescriptorContext? context, CultureInfo? culture, object? value, Type destinationType) =>
        destinationType == typeof(string) && value is T word ? word.Name() : base.ConvertTo(context, culture, value, destinationType);
}
