using System.Reflection;
using TorchSharp;

namespace RetriBooru.Tests;

/// <summary>
/// Finds where our compiled code makes a TorchSharp <see cref="Scalar"/> implicitly: a call to Scalar's implicit
/// conversion, or a call to a TorchSharp method that makes one inside (e.g. <c>Tensor * double</c>, <c>add(Tensor)</c>
/// with its default alpha). TorchSharp 0.107 passes such a temporary's handle to native code without keeping the
/// object alive, so a garbage collection on another thread can free it mid-call ("Unknown scalar type", toFloat
/// failures, rare segmentation faults; upstream PRs #1434 and #1496). Reads IL: call and callvirt operands.
/// </summary>
public static class ImplicitScalarScanner
{
    const byte Call = 0x28, CallVirt = 0x6F, NewObj = 0x73, LoadFunction = 0x06;
    static readonly Dictionary<MethodBase, bool> MakesScalarInside = [];

    /// <summary>"Type.Method -> callee" for every offending call in the methods of <paramref name="types"/> (nested compiler-generated types included).</summary>
    public static IReadOnlyList<string> Find(IEnumerable<Type> types)
    {
        var findings = new List<string>();
        foreach (var type in types.SelectMany(WithNested).Distinct())
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
                         .Cast<MethodBase>().Concat(type.GetConstructors(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static)))
                foreach (var callee in Callees(method))
                    if (IsImplicitScalar(callee) || (callee.DeclaringType?.Assembly == typeof(Scalar).Assembly && (MakesScalar(callee) || TorchSharpOverrides(callee).Any(o => MakesScalar(o)))))
                        findings.Add($"{Outer(type).FullName}.{method.Name} -> {callee.DeclaringType?.Name}.{callee.Name}({string.Join(", ", callee.GetParameters().Select(p => p.ParameterType.Name))})");
        return findings;
    }

    static bool IsImplicitScalar(MethodBase m) => m.Name == "op_Implicit" && m.DeclaringType == typeof(Scalar);

    /// <summary>A method that returns a new Scalar to its caller (who then owns it): the implicit conversions and ToScalar.</summary>
    static bool IsScalarFactory(MethodBase m) => IsImplicitScalar(m) || (m.Name == "ToScalar" && m.DeclaringType?.Assembly == typeof(Scalar).Assembly);

    /// <summary>Whether a TorchSharp method makes an implicit Scalar itself or through TorchSharp methods it calls (<c>a + b</c> -> <c>add(b)</c> -> <c>add(b, 1)</c>).</summary>
    static bool MakesScalar(MethodBase method, int depth = 0)
    {
        lock (MakesScalarInside)
        {
            if (MakesScalarInside.TryGetValue(method, out var known)) return known;
            MakesScalarInside[method] = false; // cycle guard while this method is being decided
            // A TorchSharp method that makes a Scalar (implicitly or by ToScalar) and passes it on without handing it back.
            bool makes = depth < 4 && !IsScalarFactory(method)
                         && Callees(method).Any(c => IsScalarFactory(c) || (c.DeclaringType?.Assembly == typeof(Scalar).Assembly && MakesScalar(c, depth + 1)));
            MakesScalarInside[method] = makes;
            return makes;
        }
    }

    /// <summary>
    /// The TorchSharp overrides a virtual call may reach, for the optimisers only: <c>optimizer.step()</c> is a call to
    /// the base class's virtual method, and Adam's or SGD's override makes its Scalars inside a lambda. Other virtual
    /// methods (every module's forward) are left out: our calls reach our own modules or ones the scan covers directly.
    /// </summary>
    static IEnumerable<MethodBase> TorchSharpOverrides(MethodBase callee)
    {
        if (!callee.IsVirtual || callee.DeclaringType is not { } declaring || !typeof(torch.optim.Optimizer).IsAssignableFrom(declaring)) return [];
        var parameters = callee.GetParameters().Select(p => p.ParameterType).ToArray();
        return typeof(Scalar).Assembly.GetTypes()
            .Where(t => t != declaring && declaring.IsAssignableFrom(t) && !t.IsGenericTypeDefinition)
            .Select(t => (MethodBase?)t.GetMethod(callee.Name, BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.DeclaredOnly, parameters))
            .OfType<MethodBase>();
    }

    static IEnumerable<MethodBase> Callees(MethodBase method)
    {
        byte[]? il;
        try { il = method.GetMethodBody()?.GetILAsByteArray(); }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException or BadImageFormatException) { yield break; }
        if (il is null) yield break;
        Type[]? typeArguments = method.DeclaringType?.IsGenericType == true ? method.DeclaringType.GetGenericArguments() : null;
        Type[]? methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i + 4 < il.Length; i++)
        {
            // ldftn (0xFE 0x06) loads a lambda's body for a delegate: the body runs as part of the caller's work.
            bool loadsFunction = il[i] == 0xFE && i + 5 < il.Length && il[i + 1] == LoadFunction;
            if (!loadsFunction && il[i] is not (Call or CallVirt or NewObj)) continue;
            if (loadsFunction) i++;
            int token = BitConverter.ToInt32(il, i + 1);
            // Method tokens are MethodDef (0x06), MemberRef (0x0A) or MethodSpec (0x2B); anything else is not a call operand.
            if ((token >> 24) is not (0x06 or 0x0A or 0x2B)) continue;
            MethodBase? callee;
            try { callee = method.Module.ResolveMethod(token, typeArguments, methodArguments); }
            catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException or MissingMethodException) { continue; }
            if (callee is not null) yield return callee;
        }
    }

    static IEnumerable<Type> WithNested(Type type) => type.GetNestedTypes(BindingFlags.Public | BindingFlags.NonPublic).SelectMany(WithNested).Prepend(type);

    static Type Outer(Type type) => type.DeclaringType is { } declaring ? Outer(declaring) : type;
}
